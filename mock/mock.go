package mock

import (
	"context"
	"time"

	"github.com/heraldhq/herald"
)

// notSet panics: the test called a method it did not give the fake.
func notSet(field string) {
	panic("mock: " + field + " is not set")
}

// AccountService is a fake herald.AccountService.
type AccountService struct {
	CreateAccountFn   func(ctx context.Context, a *herald.Account, firstKey *herald.APIKey) error
	FindAccountByIDFn func(ctx context.Context, id string) (*herald.Account, error)
}

var _ herald.AccountService = (*AccountService)(nil)

func (s *AccountService) CreateAccount(ctx context.Context, a *herald.Account, firstKey *herald.APIKey) error {
	if s.CreateAccountFn == nil {
		notSet("AccountService.CreateAccountFn")
	}
	return s.CreateAccountFn(ctx, a, firstKey)
}

func (s *AccountService) FindAccountByID(ctx context.Context, id string) (*herald.Account, error) {
	if s.FindAccountByIDFn == nil {
		notSet("AccountService.FindAccountByIDFn")
	}
	return s.FindAccountByIDFn(ctx, id)
}

// KeyService is a fake herald.KeyService.
type KeyService struct {
	CreateKeyFn     func(ctx context.Context, k *herald.APIKey) error
	FindKeyByHashFn func(ctx context.Context, hash string) (*herald.APIKey, error)
	FindKeysFn      func(ctx context.Context, accountID string) ([]*herald.APIKey, error)
	DeleteKeyFn     func(ctx context.Context, accountID, id string) error
}

var _ herald.KeyService = (*KeyService)(nil)

func (s *KeyService) CreateKey(ctx context.Context, k *herald.APIKey) error {
	if s.CreateKeyFn == nil {
		notSet("KeyService.CreateKeyFn")
	}
	return s.CreateKeyFn(ctx, k)
}

func (s *KeyService) FindKeyByHash(ctx context.Context, hash string) (*herald.APIKey, error) {
	if s.FindKeyByHashFn == nil {
		notSet("KeyService.FindKeyByHashFn")
	}
	return s.FindKeyByHashFn(ctx, hash)
}

func (s *KeyService) FindKeys(ctx context.Context, accountID string) ([]*herald.APIKey, error) {
	if s.FindKeysFn == nil {
		notSet("KeyService.FindKeysFn")
	}
	return s.FindKeysFn(ctx, accountID)
}

func (s *KeyService) DeleteKey(ctx context.Context, accountID, id string) error {
	if s.DeleteKeyFn == nil {
		notSet("KeyService.DeleteKeyFn")
	}
	return s.DeleteKeyFn(ctx, accountID, id)
}

// EventService is a fake herald.EventService.
type EventService struct {
	AppendEventsFn  func(ctx context.Context, batches []*herald.AppendBatch) error
	FindEventByIDFn func(ctx context.Context, accountID, id string) (*herald.Event, error)
	FindEventsFn    func(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error)
}

var _ herald.EventService = (*EventService)(nil)

func (s *EventService) AppendEvents(ctx context.Context, batches []*herald.AppendBatch) error {
	if s.AppendEventsFn == nil {
		notSet("EventService.AppendEventsFn")
	}
	return s.AppendEventsFn(ctx, batches)
}

func (s *EventService) FindEventByID(ctx context.Context, accountID, id string) (*herald.Event, error) {
	if s.FindEventByIDFn == nil {
		notSet("EventService.FindEventByIDFn")
	}
	return s.FindEventByIDFn(ctx, accountID, id)
}

func (s *EventService) FindEvents(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
	if s.FindEventsFn == nil {
		notSet("EventService.FindEventsFn")
	}
	return s.FindEventsFn(ctx, accountID, f)
}

// Appender is a fake of the group committer that httpapi hands batches to
// (httpapi.Appender). It is declared here by its method alone, so mock does
// not import httpapi.
type Appender struct {
	AppendFn func(ctx context.Context, b *herald.AppendBatch) error
}

func (a *Appender) Append(ctx context.Context, b *herald.AppendBatch) error {
	if a.AppendFn == nil {
		notSet("Appender.AppendFn")
	}
	return a.AppendFn(ctx, b)
}

// EventTypeService is a fake herald.EventTypeService.
type EventTypeService struct {
	FindEventTypesFn  func(ctx context.Context, accountID string) ([]*herald.EventType, error)
	FindEventTypeFn   func(ctx context.Context, accountID, category, typ string) (*herald.EventType, error)
	CreateEventTypeFn func(ctx context.Context, t *herald.EventType) error
	PutEventTypeFn    func(ctx context.Context, t *herald.EventType) (created bool, err error)
	DeleteEventTypeFn func(ctx context.Context, accountID, category, typ string) error
}

var _ herald.EventTypeService = (*EventTypeService)(nil)

func (s *EventTypeService) FindEventTypes(ctx context.Context, accountID string) ([]*herald.EventType, error) {
	if s.FindEventTypesFn == nil {
		notSet("EventTypeService.FindEventTypesFn")
	}
	return s.FindEventTypesFn(ctx, accountID)
}

func (s *EventTypeService) FindEventType(ctx context.Context, accountID, category, typ string) (*herald.EventType, error) {
	if s.FindEventTypeFn == nil {
		notSet("EventTypeService.FindEventTypeFn")
	}
	return s.FindEventTypeFn(ctx, accountID, category, typ)
}

func (s *EventTypeService) CreateEventType(ctx context.Context, t *herald.EventType) error {
	if s.CreateEventTypeFn == nil {
		notSet("EventTypeService.CreateEventTypeFn")
	}
	return s.CreateEventTypeFn(ctx, t)
}

func (s *EventTypeService) PutEventType(ctx context.Context, t *herald.EventType) (bool, error) {
	if s.PutEventTypeFn == nil {
		notSet("EventTypeService.PutEventTypeFn")
	}
	return s.PutEventTypeFn(ctx, t)
}

func (s *EventTypeService) DeleteEventType(ctx context.Context, accountID, category, typ string) error {
	if s.DeleteEventTypeFn == nil {
		notSet("EventTypeService.DeleteEventTypeFn")
	}
	return s.DeleteEventTypeFn(ctx, accountID, category, typ)
}

// SettingsService is a fake herald.SettingsService.
type SettingsService struct {
	FindSettingsFn func(ctx context.Context, accountID string) (*herald.Settings, error)
	PutSettingsFn  func(ctx context.Context, accountID string, s *herald.Settings) error
}

var _ herald.SettingsService = (*SettingsService)(nil)

func (s *SettingsService) FindSettings(ctx context.Context, accountID string) (*herald.Settings, error) {
	if s.FindSettingsFn == nil {
		notSet("SettingsService.FindSettingsFn")
	}
	return s.FindSettingsFn(ctx, accountID)
}

func (s *SettingsService) PutSettings(ctx context.Context, accountID string, settings *herald.Settings) error {
	if s.PutSettingsFn == nil {
		notSet("SettingsService.PutSettingsFn")
	}
	return s.PutSettingsFn(ctx, accountID, settings)
}

// LifecycleService is a fake herald.LifecycleService.
type LifecycleService struct {
	FindLifecycleFn  func(ctx context.Context, accountID, id string) (*herald.Lifecycle, error)
	FindLifecyclesFn func(ctx context.Context, accountID string, f herald.LifecycleFilter) ([]*herald.Lifecycle, error)
}

var _ herald.LifecycleService = (*LifecycleService)(nil)

func (s *LifecycleService) FindLifecycle(ctx context.Context, accountID, id string) (*herald.Lifecycle, error) {
	if s.FindLifecycleFn == nil {
		notSet("LifecycleService.FindLifecycleFn")
	}
	return s.FindLifecycleFn(ctx, accountID, id)
}

func (s *LifecycleService) FindLifecycles(ctx context.Context, accountID string, f herald.LifecycleFilter) ([]*herald.Lifecycle, error) {
	if s.FindLifecyclesFn == nil {
		notSet("LifecycleService.FindLifecyclesFn")
	}
	return s.FindLifecyclesFn(ctx, accountID, f)
}

// ProfileService is a fake herald.ProfileService.
type ProfileService struct {
	FindProfileFn  func(ctx context.Context, accountID, id string) (*herald.Profile, error)
	FindProfilesFn func(ctx context.Context, accountID string, f herald.ProfileFilter) ([]*herald.Profile, error)
	EraseProfileFn func(ctx context.Context, accountID, id string) (redacted int64, err error)
}

var _ herald.ProfileService = (*ProfileService)(nil)

func (s *ProfileService) FindProfile(ctx context.Context, accountID, id string) (*herald.Profile, error) {
	if s.FindProfileFn == nil {
		notSet("ProfileService.FindProfileFn")
	}
	return s.FindProfileFn(ctx, accountID, id)
}

func (s *ProfileService) FindProfiles(ctx context.Context, accountID string, f herald.ProfileFilter) ([]*herald.Profile, error) {
	if s.FindProfilesFn == nil {
		notSet("ProfileService.FindProfilesFn")
	}
	return s.FindProfilesFn(ctx, accountID, f)
}

func (s *ProfileService) EraseProfile(ctx context.Context, accountID, id string) (int64, error) {
	if s.EraseProfileFn == nil {
		notSet("ProfileService.EraseProfileFn")
	}
	return s.EraseProfileFn(ctx, accountID, id)
}

// SessionService is a fake herald.SessionService.
type SessionService struct {
	FindSessionByIDFn func(ctx context.Context, accountID, id string) (*herald.Session, error)
	FindSessionsFn    func(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Session, error)
}

var _ herald.SessionService = (*SessionService)(nil)

func (s *SessionService) FindSessionByID(ctx context.Context, accountID, id string) (*herald.Session, error) {
	if s.FindSessionByIDFn == nil {
		notSet("SessionService.FindSessionByIDFn")
	}
	return s.FindSessionByIDFn(ctx, accountID, id)
}

func (s *SessionService) FindSessions(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Session, error) {
	if s.FindSessionsFn == nil {
		notSet("SessionService.FindSessionsFn")
	}
	return s.FindSessionsFn(ctx, accountID, f)
}

// VisitService is a fake herald.VisitService.
type VisitService struct {
	FindVisitByIDFn func(ctx context.Context, accountID, id string) (*herald.Visit, error)
	FindVisitsFn    func(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Visit, error)
}

var _ herald.VisitService = (*VisitService)(nil)

func (s *VisitService) FindVisitByID(ctx context.Context, accountID, id string) (*herald.Visit, error) {
	if s.FindVisitByIDFn == nil {
		notSet("VisitService.FindVisitByIDFn")
	}
	return s.FindVisitByIDFn(ctx, accountID, id)
}

func (s *VisitService) FindVisits(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Visit, error) {
	if s.FindVisitsFn == nil {
		notSet("VisitService.FindVisitsFn")
	}
	return s.FindVisitsFn(ctx, accountID, f)
}

// JourneySweeper is a fake herald.JourneySweeper.
type JourneySweeper struct {
	ExpireJourneysFn func(ctx context.Context, now time.Time, limit int) (int, error)
}

var _ herald.JourneySweeper = (*JourneySweeper)(nil)

func (s *JourneySweeper) ExpireJourneys(ctx context.Context, now time.Time, limit int) (int, error) {
	if s.ExpireJourneysFn == nil {
		notSet("JourneySweeper.ExpireJourneysFn")
	}
	return s.ExpireJourneysFn(ctx, now, limit)
}

// AuditService is a fake herald.AuditService.
type AuditService struct {
	VerifyAuditFn func(ctx context.Context, accountID string) (*herald.AuditReport, error)
}

var _ herald.AuditService = (*AuditService)(nil)

func (s *AuditService) VerifyAudit(ctx context.Context, accountID string) (*herald.AuditReport, error) {
	if s.VerifyAuditFn == nil {
		notSet("AuditService.VerifyAuditFn")
	}
	return s.VerifyAuditFn(ctx, accountID)
}

// SubscriptionService is a fake herald.SubscriptionService.
type SubscriptionService struct {
	CreateSubscriptionFn   func(ctx context.Context, s *herald.Subscription, secret string) error
	FindSubscriptionByIDFn func(ctx context.Context, accountID, id string) (*herald.Subscription, error)
	FindSubscriptionsFn    func(ctx context.Context, accountID string) ([]*herald.Subscription, error)
	UpdateSubscriptionFn   func(ctx context.Context, s *herald.Subscription) error
	SetSubscriptionStateFn func(ctx context.Context, accountID, id, state, reason string) error
	DeleteSubscriptionFn   func(ctx context.Context, accountID, id string) error
	FindSigningSecretsFn   func(ctx context.Context, accountID, id string) ([]herald.SigningSecret, error)
	RotateSigningSecretFn  func(ctx context.Context, accountID, id, secret string, oldExpiresAt time.Time) error
}

var _ herald.SubscriptionService = (*SubscriptionService)(nil)

func (s *SubscriptionService) CreateSubscription(ctx context.Context, sub *herald.Subscription, secret string) error {
	if s.CreateSubscriptionFn == nil {
		notSet("SubscriptionService.CreateSubscriptionFn")
	}
	return s.CreateSubscriptionFn(ctx, sub, secret)
}

func (s *SubscriptionService) FindSubscriptionByID(ctx context.Context, accountID, id string) (*herald.Subscription, error) {
	if s.FindSubscriptionByIDFn == nil {
		notSet("SubscriptionService.FindSubscriptionByIDFn")
	}
	return s.FindSubscriptionByIDFn(ctx, accountID, id)
}

func (s *SubscriptionService) FindSubscriptions(ctx context.Context, accountID string) ([]*herald.Subscription, error) {
	if s.FindSubscriptionsFn == nil {
		notSet("SubscriptionService.FindSubscriptionsFn")
	}
	return s.FindSubscriptionsFn(ctx, accountID)
}

func (s *SubscriptionService) UpdateSubscription(ctx context.Context, sub *herald.Subscription) error {
	if s.UpdateSubscriptionFn == nil {
		notSet("SubscriptionService.UpdateSubscriptionFn")
	}
	return s.UpdateSubscriptionFn(ctx, sub)
}

func (s *SubscriptionService) SetSubscriptionState(ctx context.Context, accountID, id, state, reason string) error {
	if s.SetSubscriptionStateFn == nil {
		notSet("SubscriptionService.SetSubscriptionStateFn")
	}
	return s.SetSubscriptionStateFn(ctx, accountID, id, state, reason)
}

func (s *SubscriptionService) DeleteSubscription(ctx context.Context, accountID, id string) error {
	if s.DeleteSubscriptionFn == nil {
		notSet("SubscriptionService.DeleteSubscriptionFn")
	}
	return s.DeleteSubscriptionFn(ctx, accountID, id)
}

func (s *SubscriptionService) FindSigningSecrets(ctx context.Context, accountID, id string) ([]herald.SigningSecret, error) {
	if s.FindSigningSecretsFn == nil {
		notSet("SubscriptionService.FindSigningSecretsFn")
	}
	return s.FindSigningSecretsFn(ctx, accountID, id)
}

func (s *SubscriptionService) RotateSigningSecret(ctx context.Context, accountID, id, secret string, oldExpiresAt time.Time) error {
	if s.RotateSigningSecretFn == nil {
		notSet("SubscriptionService.RotateSigningSecretFn")
	}
	return s.RotateSigningSecretFn(ctx, accountID, id, secret, oldExpiresAt)
}

// DeliveryService is a fake herald.DeliveryService.
type DeliveryService struct {
	LeaseSubscriptionsFn   func(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Subscription, error)
	ReleaseSubscriptionsFn func(ctx context.Context, owner string) error
	SaveDeliveryFn         func(ctx context.Context, p *herald.DeliveryProgress) error
	DueMessagesFn          func(ctx context.Context, accountID, subscriptionID string, now time.Time, limit int) ([]*herald.Message, error)
	FindMessagesFn         func(ctx context.Context, accountID, subscriptionID string, f herald.MessageFilter) ([]*herald.Message, error)
	RetryMessagesFn        func(ctx context.Context, accountID, subscriptionID string, f herald.MessageFilter, now time.Time) (int, error)
	FindAttemptsFn         func(ctx context.Context, accountID, subscriptionID string, f herald.AttemptFilter) ([]*herald.Attempt, error)
	PruneAttemptsFn        func(ctx context.Context, before time.Time, limit int) (int, error)
}

var _ herald.DeliveryService = (*DeliveryService)(nil)

func (s *DeliveryService) LeaseSubscriptions(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Subscription, error) {
	if s.LeaseSubscriptionsFn == nil {
		notSet("DeliveryService.LeaseSubscriptionsFn")
	}
	return s.LeaseSubscriptionsFn(ctx, owner, now, ttl, max)
}

func (s *DeliveryService) ReleaseSubscriptions(ctx context.Context, owner string) error {
	if s.ReleaseSubscriptionsFn == nil {
		notSet("DeliveryService.ReleaseSubscriptionsFn")
	}
	return s.ReleaseSubscriptionsFn(ctx, owner)
}

func (s *DeliveryService) SaveDelivery(ctx context.Context, p *herald.DeliveryProgress) error {
	if s.SaveDeliveryFn == nil {
		notSet("DeliveryService.SaveDeliveryFn")
	}
	return s.SaveDeliveryFn(ctx, p)
}

func (s *DeliveryService) DueMessages(ctx context.Context, accountID, subscriptionID string, now time.Time, limit int) ([]*herald.Message, error) {
	if s.DueMessagesFn == nil {
		notSet("DeliveryService.DueMessagesFn")
	}
	return s.DueMessagesFn(ctx, accountID, subscriptionID, now, limit)
}

func (s *DeliveryService) FindMessages(ctx context.Context, accountID, subscriptionID string, f herald.MessageFilter) ([]*herald.Message, error) {
	if s.FindMessagesFn == nil {
		notSet("DeliveryService.FindMessagesFn")
	}
	return s.FindMessagesFn(ctx, accountID, subscriptionID, f)
}

func (s *DeliveryService) RetryMessages(ctx context.Context, accountID, subscriptionID string, f herald.MessageFilter, now time.Time) (int, error) {
	if s.RetryMessagesFn == nil {
		notSet("DeliveryService.RetryMessagesFn")
	}
	return s.RetryMessagesFn(ctx, accountID, subscriptionID, f, now)
}

func (s *DeliveryService) FindAttempts(ctx context.Context, accountID, subscriptionID string, f herald.AttemptFilter) ([]*herald.Attempt, error) {
	if s.FindAttemptsFn == nil {
		notSet("DeliveryService.FindAttemptsFn")
	}
	return s.FindAttemptsFn(ctx, accountID, subscriptionID, f)
}

func (s *DeliveryService) PruneAttempts(ctx context.Context, before time.Time, limit int) (int, error) {
	if s.PruneAttemptsFn == nil {
		notSet("DeliveryService.PruneAttemptsFn")
	}
	return s.PruneAttemptsFn(ctx, before, limit)
}

// WorkflowService is a fake herald.WorkflowService.
type WorkflowService struct {
	CreateWorkflowFn   func(ctx context.Context, w *herald.Workflow) error
	FindWorkflowFn     func(ctx context.Context, accountID, name string) (*herald.Workflow, error)
	FindWorkflowsFn    func(ctx context.Context, accountID string) ([]*herald.Workflow, error)
	UpdateWorkflowFn   func(ctx context.Context, w *herald.Workflow) error
	SetWorkflowStateFn func(ctx context.Context, accountID, name, state string) error
	DeleteWorkflowFn   func(ctx context.Context, accountID, name string) error
	FindWorkflowRunFn  func(ctx context.Context, accountID, id string) (*herald.WorkflowRun, error)
	FindWorkflowRunsFn func(ctx context.Context, accountID, name string, f herald.RunFilter) ([]*herald.WorkflowRun, error)
}

var _ herald.WorkflowService = (*WorkflowService)(nil)

func (s *WorkflowService) CreateWorkflow(ctx context.Context, w *herald.Workflow) error {
	if s.CreateWorkflowFn == nil {
		notSet("WorkflowService.CreateWorkflowFn")
	}
	return s.CreateWorkflowFn(ctx, w)
}

func (s *WorkflowService) FindWorkflow(ctx context.Context, accountID, name string) (*herald.Workflow, error) {
	if s.FindWorkflowFn == nil {
		notSet("WorkflowService.FindWorkflowFn")
	}
	return s.FindWorkflowFn(ctx, accountID, name)
}

func (s *WorkflowService) FindWorkflows(ctx context.Context, accountID string) ([]*herald.Workflow, error) {
	if s.FindWorkflowsFn == nil {
		notSet("WorkflowService.FindWorkflowsFn")
	}
	return s.FindWorkflowsFn(ctx, accountID)
}

func (s *WorkflowService) UpdateWorkflow(ctx context.Context, w *herald.Workflow) error {
	if s.UpdateWorkflowFn == nil {
		notSet("WorkflowService.UpdateWorkflowFn")
	}
	return s.UpdateWorkflowFn(ctx, w)
}

func (s *WorkflowService) SetWorkflowState(ctx context.Context, accountID, name, state string) error {
	if s.SetWorkflowStateFn == nil {
		notSet("WorkflowService.SetWorkflowStateFn")
	}
	return s.SetWorkflowStateFn(ctx, accountID, name, state)
}

func (s *WorkflowService) DeleteWorkflow(ctx context.Context, accountID, name string) error {
	if s.DeleteWorkflowFn == nil {
		notSet("WorkflowService.DeleteWorkflowFn")
	}
	return s.DeleteWorkflowFn(ctx, accountID, name)
}

func (s *WorkflowService) FindWorkflowRun(ctx context.Context, accountID, id string) (*herald.WorkflowRun, error) {
	if s.FindWorkflowRunFn == nil {
		notSet("WorkflowService.FindWorkflowRunFn")
	}
	return s.FindWorkflowRunFn(ctx, accountID, id)
}

func (s *WorkflowService) FindWorkflowRuns(ctx context.Context, accountID, name string, f herald.RunFilter) ([]*herald.WorkflowRun, error) {
	if s.FindWorkflowRunsFn == nil {
		notSet("WorkflowService.FindWorkflowRunsFn")
	}
	return s.FindWorkflowRunsFn(ctx, accountID, name, f)
}

// WorkflowQueue is a fake herald.WorkflowQueue.
type WorkflowQueue struct {
	LeaseWorkflowsFn   func(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Workflow, error)
	ReleaseWorkflowsFn func(ctx context.Context, owner string) error
	EnqueueRunsFn      func(ctx context.Context, accountID, workflow, owner string, cursor int64, runs []*herald.WorkflowRun, events []*herald.Event) error
	ClaimRunsFn        func(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.WorkflowRun, error)
	SaveRunFn          func(ctx context.Context, r *herald.WorkflowRun, owner string, leaseUntil time.Time, events []*herald.Event) error
}

var _ herald.WorkflowQueue = (*WorkflowQueue)(nil)

func (q *WorkflowQueue) LeaseWorkflows(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Workflow, error) {
	if q.LeaseWorkflowsFn == nil {
		notSet("WorkflowQueue.LeaseWorkflowsFn")
	}
	return q.LeaseWorkflowsFn(ctx, owner, now, ttl, max)
}

func (q *WorkflowQueue) ReleaseWorkflows(ctx context.Context, owner string) error {
	if q.ReleaseWorkflowsFn == nil {
		notSet("WorkflowQueue.ReleaseWorkflowsFn")
	}
	return q.ReleaseWorkflowsFn(ctx, owner)
}

func (q *WorkflowQueue) EnqueueRuns(ctx context.Context, accountID, workflow, owner string, cursor int64, runs []*herald.WorkflowRun, events []*herald.Event) error {
	if q.EnqueueRunsFn == nil {
		notSet("WorkflowQueue.EnqueueRunsFn")
	}
	return q.EnqueueRunsFn(ctx, accountID, workflow, owner, cursor, runs, events)
}

func (q *WorkflowQueue) ClaimRuns(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.WorkflowRun, error) {
	if q.ClaimRunsFn == nil {
		notSet("WorkflowQueue.ClaimRunsFn")
	}
	return q.ClaimRunsFn(ctx, owner, now, ttl, max)
}

func (q *WorkflowQueue) SaveRun(ctx context.Context, r *herald.WorkflowRun, owner string, leaseUntil time.Time, events []*herald.Event) error {
	if q.SaveRunFn == nil {
		notSet("WorkflowQueue.SaveRunFn")
	}
	return q.SaveRunFn(ctx, r, owner, leaseUntil, events)
}

// WorkService is a fake herald.WorkService.
type WorkService struct {
	CreateWorkFn      func(ctx context.Context, w *herald.Work) error
	FindWorkFn        func(ctx context.Context, accountID, id string) (*herald.Work, error)
	FindWorksFn       func(ctx context.Context, accountID, kind string) ([]*herald.Work, error)
	UpdateWorkFn      func(ctx context.Context, w *herald.Work) error
	SetWorkStateFn    func(ctx context.Context, accountID, id, state, reason string) error
	RunWorkNowFn      func(ctx context.Context, accountID, id string, at time.Time) error
	DeleteWorkFn      func(ctx context.Context, accountID, id string) error
	FindWorkRecordsFn func(ctx context.Context, accountID, id string, f herald.WorkRecordFilter) ([]*herald.WorkRecord, error)
}

var _ herald.WorkService = (*WorkService)(nil)

func (s *WorkService) CreateWork(ctx context.Context, w *herald.Work) error {
	if s.CreateWorkFn == nil {
		notSet("WorkService.CreateWorkFn")
	}
	return s.CreateWorkFn(ctx, w)
}

func (s *WorkService) FindWork(ctx context.Context, accountID, id string) (*herald.Work, error) {
	if s.FindWorkFn == nil {
		notSet("WorkService.FindWorkFn")
	}
	return s.FindWorkFn(ctx, accountID, id)
}

func (s *WorkService) FindWorks(ctx context.Context, accountID, kind string) ([]*herald.Work, error) {
	if s.FindWorksFn == nil {
		notSet("WorkService.FindWorksFn")
	}
	return s.FindWorksFn(ctx, accountID, kind)
}

func (s *WorkService) UpdateWork(ctx context.Context, w *herald.Work) error {
	if s.UpdateWorkFn == nil {
		notSet("WorkService.UpdateWorkFn")
	}
	return s.UpdateWorkFn(ctx, w)
}

func (s *WorkService) SetWorkState(ctx context.Context, accountID, id, state, reason string) error {
	if s.SetWorkStateFn == nil {
		notSet("WorkService.SetWorkStateFn")
	}
	return s.SetWorkStateFn(ctx, accountID, id, state, reason)
}

func (s *WorkService) RunWorkNow(ctx context.Context, accountID, id string, at time.Time) error {
	if s.RunWorkNowFn == nil {
		notSet("WorkService.RunWorkNowFn")
	}
	return s.RunWorkNowFn(ctx, accountID, id, at)
}

func (s *WorkService) DeleteWork(ctx context.Context, accountID, id string) error {
	if s.DeleteWorkFn == nil {
		notSet("WorkService.DeleteWorkFn")
	}
	return s.DeleteWorkFn(ctx, accountID, id)
}

func (s *WorkService) FindWorkRecords(ctx context.Context, accountID, id string, f herald.WorkRecordFilter) ([]*herald.WorkRecord, error) {
	if s.FindWorkRecordsFn == nil {
		notSet("WorkService.FindWorkRecordsFn")
	}
	return s.FindWorkRecordsFn(ctx, accountID, id, f)
}

// WorkQueue is a fake herald.WorkQueue.
type WorkQueue struct {
	LeaseWorkFn        func(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Work, error)
	ReleaseWorkFn      func(ctx context.Context, owner string) error
	SaveWorkProgressFn func(ctx context.Context, p *herald.WorkProgress) error
	LastSeqFn          func(ctx context.Context, accountID string) (int64, error)
}

var _ herald.WorkQueue = (*WorkQueue)(nil)

func (q *WorkQueue) LeaseWork(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Work, error) {
	if q.LeaseWorkFn == nil {
		notSet("WorkQueue.LeaseWorkFn")
	}
	return q.LeaseWorkFn(ctx, owner, now, ttl, max)
}

func (q *WorkQueue) ReleaseWork(ctx context.Context, owner string) error {
	if q.ReleaseWorkFn == nil {
		notSet("WorkQueue.ReleaseWorkFn")
	}
	return q.ReleaseWorkFn(ctx, owner)
}

func (q *WorkQueue) SaveWorkProgress(ctx context.Context, p *herald.WorkProgress) error {
	if q.SaveWorkProgressFn == nil {
		notSet("WorkQueue.SaveWorkProgressFn")
	}
	return q.SaveWorkProgressFn(ctx, p)
}

func (q *WorkQueue) LastSeq(ctx context.Context, accountID string) (int64, error) {
	if q.LastSeqFn == nil {
		notSet("WorkQueue.LastSeqFn")
	}
	return q.LastSeqFn(ctx, accountID)
}
