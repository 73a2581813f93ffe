package mock_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/mock"
)

func TestCallsGoToTheFunctions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var calls []string
	note := func(name string) { calls = append(calls, name) }
	accounts := &mock.AccountService{
		CreateAccountFn:   func(context.Context, *herald.Account, *herald.APIKey) error { note("CreateAccount"); return nil },
		FindAccountByIDFn: func(context.Context, string) (*herald.Account, error) { note("FindAccountByID"); return nil, nil },
	}
	keys := &mock.KeyService{
		CreateKeyFn:     func(context.Context, *herald.APIKey) error { note("CreateKey"); return nil },
		FindKeyByHashFn: func(context.Context, string) (*herald.APIKey, error) { note("FindKeyByHash"); return nil, nil },
		FindKeysFn:      func(context.Context, string) ([]*herald.APIKey, error) { note("FindKeys"); return nil, nil },
		DeleteKeyFn:     func(context.Context, string, string) error { note("DeleteKey"); return nil },
	}
	events := &mock.EventService{
		AppendEventsFn:  func(context.Context, []*herald.AppendBatch) error { note("AppendEvents"); return nil },
		FindEventByIDFn: func(context.Context, string, string) (*herald.Event, error) { note("FindEventByID"); return nil, nil },
		FindEventsFn: func(context.Context, string, herald.EventFilter) ([]*herald.Event, error) {
			note("FindEvents")
			return nil, nil
		},
	}
	appender := &mock.Appender{AppendFn: func(context.Context, *herald.AppendBatch) error { note("Append"); return nil }}
	types := &mock.EventTypeService{
		FindEventTypesFn: func(context.Context, string) ([]*herald.EventType, error) { note("FindEventTypes"); return nil, nil },
		FindEventTypeFn: func(context.Context, string, string, string) (*herald.EventType, error) {
			note("FindEventType")
			return nil, nil
		},
		CreateEventTypeFn: func(context.Context, *herald.EventType) error { note("CreateEventType"); return nil },
		PutEventTypeFn:    func(context.Context, *herald.EventType) (bool, error) { note("PutEventType"); return false, nil },
		DeleteEventTypeFn: func(context.Context, string, string, string) error { note("DeleteEventType"); return nil },
	}
	settings := &mock.SettingsService{
		FindSettingsFn: func(context.Context, string) (*herald.Settings, error) { note("FindSettings"); return nil, nil },
		PutSettingsFn:  func(context.Context, string, *herald.Settings) error { note("PutSettings"); return nil },
	}
	lifecycles := &mock.LifecycleService{
		FindLifecycleFn: func(context.Context, string, string) (*herald.Lifecycle, error) {
			note("FindLifecycle")
			return nil, nil
		},
		FindLifecyclesFn: func(context.Context, string, herald.LifecycleFilter) ([]*herald.Lifecycle, error) {
			note("FindLifecycles")
			return nil, nil
		},
	}
	profiles := &mock.ProfileService{
		FindProfileFn: func(context.Context, string, string) (*herald.Profile, error) { note("FindProfile"); return nil, nil },
		FindProfilesFn: func(context.Context, string, herald.ProfileFilter) ([]*herald.Profile, error) {
			note("FindProfiles")
			return nil, nil
		},
		EraseProfileFn: func(context.Context, string, string) (int64, error) { note("EraseProfile"); return 0, nil },
	}
	sessions := &mock.SessionService{
		FindSessionByIDFn: func(context.Context, string, string) (*herald.Session, error) {
			note("FindSessionByID")
			return nil, nil
		},
		FindSessionsFn: func(context.Context, string, herald.JourneyFilter) ([]*herald.Session, error) {
			note("FindSessions")
			return nil, nil
		},
	}
	visits := &mock.VisitService{
		FindVisitByIDFn: func(context.Context, string, string) (*herald.Visit, error) { note("FindVisitByID"); return nil, nil },
		FindVisitsFn: func(context.Context, string, herald.JourneyFilter) ([]*herald.Visit, error) {
			note("FindVisits")
			return nil, nil
		},
	}
	sweeper := &mock.JourneySweeper{ExpireJourneysFn: func(context.Context, time.Time, int) (int, error) { note("ExpireJourneys"); return 0, nil }}
	audit := &mock.AuditService{VerifyAuditFn: func(context.Context, string) (*herald.AuditReport, error) { note("VerifyAudit"); return nil, nil }}
	subs := &mock.SubscriptionService{
		CreateSubscriptionFn: func(context.Context, *herald.Subscription, string) error { note("CreateSubscription"); return nil },
		FindSubscriptionByIDFn: func(context.Context, string, string) (*herald.Subscription, error) {
			note("FindSubscriptionByID")
			return nil, nil
		},
		FindSubscriptionsFn: func(context.Context, string) ([]*herald.Subscription, error) {
			note("FindSubscriptions")
			return nil, nil
		},
		UpdateSubscriptionFn:   func(context.Context, *herald.Subscription) error { note("UpdateSubscription"); return nil },
		SetSubscriptionStateFn: func(context.Context, string, string, string, string) error { note("SetSubscriptionState"); return nil },
		DeleteSubscriptionFn:   func(context.Context, string, string) error { note("DeleteSubscription"); return nil },
		FindSigningSecretsFn: func(context.Context, string, string) ([]herald.SigningSecret, error) {
			note("FindSigningSecrets")
			return nil, nil
		},
		RotateSigningSecretFn: func(context.Context, string, string, string, time.Time) error {
			note("RotateSigningSecret")
			return nil
		},
	}
	deliveries := &mock.DeliveryService{
		LeaseSubscriptionsFn: func(context.Context, string, time.Time, time.Duration, int) ([]*herald.Subscription, error) {
			note("LeaseSubscriptions")
			return nil, nil
		},
		ReleaseSubscriptionsFn: func(context.Context, string) error { note("ReleaseSubscriptions"); return nil },
		SaveDeliveryFn:         func(context.Context, *herald.DeliveryProgress) error { note("SaveDelivery"); return nil },
		DueMessagesFn: func(context.Context, string, string, time.Time, int) ([]*herald.Message, error) {
			note("DueMessages")
			return nil, nil
		},
		FindMessagesFn: func(context.Context, string, string, herald.MessageFilter) ([]*herald.Message, error) {
			note("FindMessages")
			return nil, nil
		},
		RetryMessagesFn: func(context.Context, string, string, herald.MessageFilter, time.Time) (int, error) {
			note("RetryMessages")
			return 0, nil
		},
		FindAttemptsFn: func(context.Context, string, string, herald.AttemptFilter) ([]*herald.Attempt, error) {
			note("FindAttempts")
			return nil, nil
		},
	}

	_ = accounts.CreateAccount(ctx, nil, nil)
	_, _ = accounts.FindAccountByID(ctx, "")
	_ = keys.CreateKey(ctx, nil)
	_, _ = keys.FindKeyByHash(ctx, "")
	_, _ = keys.FindKeys(ctx, "")
	_ = keys.DeleteKey(ctx, "", "")
	_ = events.AppendEvents(ctx, nil)
	_, _ = events.FindEventByID(ctx, "", "")
	_, _ = events.FindEvents(ctx, "", herald.EventFilter{})
	_ = appender.Append(ctx, nil)
	_, _ = types.FindEventTypes(ctx, "")
	_, _ = types.FindEventType(ctx, "", "", "")
	_ = types.CreateEventType(ctx, nil)
	_, _ = types.PutEventType(ctx, nil)
	_ = types.DeleteEventType(ctx, "", "", "")
	_, _ = settings.FindSettings(ctx, "")
	_ = settings.PutSettings(ctx, "", nil)
	_, _ = lifecycles.FindLifecycle(ctx, "", "")
	_, _ = lifecycles.FindLifecycles(ctx, "", herald.LifecycleFilter{})
	_, _ = profiles.FindProfile(ctx, "", "")
	_, _ = profiles.FindProfiles(ctx, "", herald.ProfileFilter{})
	_, _ = profiles.EraseProfile(ctx, "", "")
	_, _ = sessions.FindSessionByID(ctx, "", "")
	_, _ = sessions.FindSessions(ctx, "", herald.JourneyFilter{})
	_, _ = visits.FindVisitByID(ctx, "", "")
	_, _ = visits.FindVisits(ctx, "", herald.JourneyFilter{})
	_, _ = sweeper.ExpireJourneys(ctx, time.Time{}, 0)
	_, _ = audit.VerifyAudit(ctx, "")
	_ = subs.CreateSubscription(ctx, nil, "")
	_, _ = subs.FindSubscriptionByID(ctx, "", "")
	_, _ = subs.FindSubscriptions(ctx, "")
	_ = subs.UpdateSubscription(ctx, nil)
	_ = subs.SetSubscriptionState(ctx, "", "", "", "")
	_ = subs.DeleteSubscription(ctx, "", "")
	_, _ = subs.FindSigningSecrets(ctx, "", "")
	_ = subs.RotateSigningSecret(ctx, "", "", "", time.Time{})
	_, _ = deliveries.LeaseSubscriptions(ctx, "", time.Time{}, 0, 0)
	_ = deliveries.ReleaseSubscriptions(ctx, "")
	_ = deliveries.SaveDelivery(ctx, nil)
	_, _ = deliveries.DueMessages(ctx, "", "", time.Time{}, 0)
	_, _ = deliveries.FindMessages(ctx, "", "", herald.MessageFilter{})
	_, _ = deliveries.RetryMessages(ctx, "", "", herald.MessageFilter{}, time.Time{})
	_, _ = deliveries.FindAttempts(ctx, "", "", herald.AttemptFilter{})

	want := "CreateAccount FindAccountByID CreateKey FindKeyByHash FindKeys DeleteKey AppendEvents FindEventByID FindEvents Append" +
		" FindEventTypes FindEventType CreateEventType PutEventType DeleteEventType FindSettings PutSettings" +
		" FindLifecycle FindLifecycles FindProfile FindProfiles EraseProfile" +
		" FindSessionByID FindSessions FindVisitByID FindVisits ExpireJourneys VerifyAudit" +
		" CreateSubscription FindSubscriptionByID FindSubscriptions UpdateSubscription SetSubscriptionState DeleteSubscription" +
		" FindSigningSecrets RotateSigningSecret" +
		" LeaseSubscriptions ReleaseSubscriptions SaveDelivery DueMessages FindMessages RetryMessages FindAttempts"
	if got := strings.Join(calls, " "); got != want {
		t.Errorf("calls\n got %s\nwant %s", got, want)
	}
}

func TestUnsetFunctionPanicsWithItsName(t *testing.T) {
	t.Parallel()
	defer func() {
		if v := recover(); v != "mock: EventService.FindEventsFn is not set" {
			t.Errorf("recovered %v", v)
		}
	}()
	var s mock.EventService
	_, _ = s.FindEvents(context.Background(), "acme", herald.EventFilter{})
}

func TestWorkflowAndWorkCallsGoToTheFunctions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var calls []string
	note := func(name string) { calls = append(calls, name) }
	flows := &mock.WorkflowService{
		CreateWorkflowFn: func(context.Context, *herald.Workflow) error { note("CreateWorkflow"); return nil },
		FindWorkflowFn: func(context.Context, string, string) (*herald.Workflow, error) {
			note("FindWorkflow")
			return nil, nil
		},
		FindWorkflowsFn:  func(context.Context, string) ([]*herald.Workflow, error) { note("FindWorkflows"); return nil, nil },
		UpdateWorkflowFn: func(context.Context, *herald.Workflow) error { note("UpdateWorkflow"); return nil },
		SetWorkflowStateFn: func(context.Context, string, string, string) error {
			note("SetWorkflowState")
			return nil
		},
		DeleteWorkflowFn: func(context.Context, string, string) error { note("DeleteWorkflow"); return nil },
		FindWorkflowRunFn: func(context.Context, string, string) (*herald.WorkflowRun, error) {
			note("FindWorkflowRun")
			return nil, nil
		},
		FindWorkflowRunsFn: func(context.Context, string, string, herald.RunFilter) ([]*herald.WorkflowRun, error) {
			note("FindWorkflowRuns")
			return nil, nil
		},
	}
	flowQueue := &mock.WorkflowQueue{
		LeaseWorkflowsFn: func(context.Context, string, time.Time, time.Duration, int) ([]*herald.Workflow, error) {
			note("LeaseWorkflows")
			return nil, nil
		},
		ReleaseWorkflowsFn: func(context.Context, string) error { note("ReleaseWorkflows"); return nil },
		EnqueueRunsFn: func(context.Context, string, string, string, int64, []*herald.WorkflowRun, []*herald.Event) error {
			note("EnqueueRuns")
			return nil
		},
		ClaimRunsFn: func(context.Context, string, time.Time, time.Duration, int) ([]*herald.WorkflowRun, error) {
			note("ClaimRuns")
			return nil, nil
		},
		SaveRunFn: func(context.Context, *herald.WorkflowRun, string, time.Time, []*herald.Event) error {
			note("SaveRun")
			return nil
		},
	}
	work := &mock.WorkService{
		CreateWorkFn: func(context.Context, *herald.Work) error { note("CreateWork"); return nil },
		FindWorkFn:   func(context.Context, string, string) (*herald.Work, error) { note("FindWork"); return nil, nil },
		FindWorksFn:  func(context.Context, string, string) ([]*herald.Work, error) { note("FindWorks"); return nil, nil },
		UpdateWorkFn: func(context.Context, *herald.Work) error { note("UpdateWork"); return nil },
		SetWorkStateFn: func(context.Context, string, string, string, string) error {
			note("SetWorkState")
			return nil
		},
		RunWorkNowFn: func(context.Context, string, string, time.Time) error { note("RunWorkNow"); return nil },
		DeleteWorkFn: func(context.Context, string, string) error { note("DeleteWork"); return nil },
		FindWorkRecordsFn: func(context.Context, string, string, herald.WorkRecordFilter) ([]*herald.WorkRecord, error) {
			note("FindWorkRecords")
			return nil, nil
		},
	}
	workQueue := &mock.WorkQueue{
		LeaseWorkFn: func(context.Context, string, time.Time, time.Duration, int) ([]*herald.Work, error) {
			note("LeaseWork")
			return nil, nil
		},
		ReleaseWorkFn:      func(context.Context, string) error { note("ReleaseWork"); return nil },
		SaveWorkProgressFn: func(context.Context, *herald.WorkProgress) error { note("SaveWorkProgress"); return nil },
		LastSeqFn:          func(context.Context, string) (int64, error) { note("LastSeq"); return 0, nil },
	}

	_ = flows.CreateWorkflow(ctx, nil)
	_, _ = flows.FindWorkflow(ctx, "", "")
	_, _ = flows.FindWorkflows(ctx, "")
	_ = flows.UpdateWorkflow(ctx, nil)
	_ = flows.SetWorkflowState(ctx, "", "", "")
	_ = flows.DeleteWorkflow(ctx, "", "")
	_, _ = flows.FindWorkflowRun(ctx, "", "")
	_, _ = flows.FindWorkflowRuns(ctx, "", "", herald.RunFilter{})
	_, _ = flowQueue.LeaseWorkflows(ctx, "", time.Time{}, 0, 0)
	_ = flowQueue.ReleaseWorkflows(ctx, "")
	_ = flowQueue.EnqueueRuns(ctx, "", "", "", 0, nil, nil)
	_, _ = flowQueue.ClaimRuns(ctx, "", time.Time{}, 0, 0)
	_ = flowQueue.SaveRun(ctx, nil, "", time.Time{}, nil)
	_ = work.CreateWork(ctx, nil)
	_, _ = work.FindWork(ctx, "", "")
	_, _ = work.FindWorks(ctx, "", "")
	_ = work.UpdateWork(ctx, nil)
	_ = work.SetWorkState(ctx, "", "", "", "")
	_ = work.RunWorkNow(ctx, "", "", time.Time{})
	_ = work.DeleteWork(ctx, "", "")
	_, _ = work.FindWorkRecords(ctx, "", "", herald.WorkRecordFilter{})
	_, _ = workQueue.LeaseWork(ctx, "", time.Time{}, 0, 0)
	_ = workQueue.ReleaseWork(ctx, "")
	_ = workQueue.SaveWorkProgress(ctx, nil)
	_, _ = workQueue.LastSeq(ctx, "")

	want := "CreateWorkflow FindWorkflow FindWorkflows UpdateWorkflow SetWorkflowState DeleteWorkflow FindWorkflowRun FindWorkflowRuns" +
		" LeaseWorkflows ReleaseWorkflows EnqueueRuns ClaimRuns SaveRun" +
		" CreateWork FindWork FindWorks UpdateWork SetWorkState RunWorkNow DeleteWork FindWorkRecords" +
		" LeaseWork ReleaseWork SaveWorkProgress LastSeq"
	if got := strings.Join(calls, " "); got != want {
		t.Errorf("calls\n got %s\nwant %s", got, want)
	}
}
