package main

import (
	"context"
	"time"

	"github.com/heraldhq/herald"
)

// notifier is told which account stored events, so the readers of its
// log (deliverers, workflow triggers, export and alert jobs, the live
// streams of GET /v1/events/stream through their httpapi.Hub) look at once
// instead of at their next poll; Refresh asks it to look at what it holds.
type notifier interface {
	Notify(accountID string)
	Refresh()
}

// engines passes each word on to every engine that reads the log, and to
// the hub of the live streams. It is filled before any of them starts.
type engines []notifier

func (es *engines) Notify(accountID string) {
	for _, e := range *es {
		e.Notify(accountID)
	}
}

func (es *engines) Refresh() {
	for _, e := range *es {
		e.Refresh()
	}
}

// notifyingStore is the store with every write that stores events (a
// batch, a system event of a change or of an engine's progress, a sweep)
// followed by a word to the engines. Reads and bookkeeping that store no
// event pass straight through.
type notifyingStore struct {
	store
	n notifier
}

func (s notifyingStore) done(accountID string, err error) error {
	if err == nil {
		s.n.Notify(accountID)
	}
	return err
}

// changed is done for a change to a subscription, a workflow or a job:
// the engines take it up at once.
func (s notifyingStore) changed(accountID string, err error) error {
	if err == nil {
		s.n.Refresh()
		s.n.Notify(accountID)
	}
	return err
}

func (s notifyingStore) AppendEvents(ctx context.Context, batches []*herald.AppendBatch) error {
	err := s.store.AppendEvents(ctx, batches)
	if err == nil {
		seen := map[string]bool{}
		for _, b := range batches {
			if !seen[b.AccountID] {
				seen[b.AccountID] = true
				s.n.Notify(b.AccountID)
			}
		}
	}
	return err
}

func (s notifyingStore) CreateAccount(ctx context.Context, a *herald.Account, k *herald.APIKey) error {
	return s.done(a.ID, s.store.CreateAccount(ctx, a, k))
}

func (s notifyingStore) CreateKey(ctx context.Context, k *herald.APIKey) error {
	return s.done(k.AccountID, s.store.CreateKey(ctx, k))
}

func (s notifyingStore) DeleteKey(ctx context.Context, accountID, id string) error {
	return s.done(accountID, s.store.DeleteKey(ctx, accountID, id))
}

func (s notifyingStore) CreateEventType(ctx context.Context, t *herald.EventType) error {
	return s.done(t.AccountID, s.store.CreateEventType(ctx, t))
}

func (s notifyingStore) PutEventType(ctx context.Context, t *herald.EventType) (bool, error) {
	created, err := s.store.PutEventType(ctx, t)
	return created, s.done(t.AccountID, err)
}

func (s notifyingStore) DeleteEventType(ctx context.Context, accountID, category, typ string) error {
	return s.done(accountID, s.store.DeleteEventType(ctx, accountID, category, typ))
}

func (s notifyingStore) PutSettings(ctx context.Context, accountID string, set *herald.Settings) error {
	return s.done(accountID, s.store.PutSettings(ctx, accountID, set))
}

func (s notifyingStore) EraseProfile(ctx context.Context, accountID, id string) (int64, error) {
	n, err := s.store.EraseProfile(ctx, accountID, id)
	return n, s.done(accountID, err)
}

func (s notifyingStore) ExpireJourneys(ctx context.Context, now time.Time, limit int) (int, error) {
	n, err := s.store.ExpireJourneys(ctx, now, limit)
	if err == nil && n > 0 {
		// Which accounts is not told; a sweep is rare next to ingest.
		s.n.Refresh()
	}
	return n, err
}

func (s notifyingStore) CreateSubscription(ctx context.Context, sub *herald.Subscription, secret string) error {
	return s.changed(sub.AccountID, s.store.CreateSubscription(ctx, sub, secret))
}

func (s notifyingStore) UpdateSubscription(ctx context.Context, sub *herald.Subscription) error {
	return s.changed(sub.AccountID, s.store.UpdateSubscription(ctx, sub))
}

func (s notifyingStore) SetSubscriptionState(ctx context.Context, accountID, id, state, reason string) error {
	return s.changed(accountID, s.store.SetSubscriptionState(ctx, accountID, id, state, reason))
}

func (s notifyingStore) DeleteSubscription(ctx context.Context, accountID, id string) error {
	return s.changed(accountID, s.store.DeleteSubscription(ctx, accountID, id))
}

func (s notifyingStore) RotateSigningSecret(ctx context.Context, accountID, id, secret string, oldExpiresAt time.Time) error {
	return s.changed(accountID, s.store.RotateSigningSecret(ctx, accountID, id, secret, oldExpiresAt))
}

func (s notifyingStore) RetryMessages(ctx context.Context, accountID, id string, f herald.MessageFilter, now time.Time) (int, error) {
	n, err := s.store.RetryMessages(ctx, accountID, id, f, now)
	return n, s.changed(accountID, err)
}

// done for the engines' own saves: they store events only sometimes.
func (s notifyingStore) saved(accountID string, events []*herald.Event, err error) error {
	if len(events) == 0 {
		return err
	}
	return s.done(accountID, err)
}

func (s notifyingStore) CreateWorkflow(ctx context.Context, w *herald.Workflow) error {
	return s.changed(w.AccountID, s.store.CreateWorkflow(ctx, w))
}

func (s notifyingStore) UpdateWorkflow(ctx context.Context, w *herald.Workflow) error {
	return s.changed(w.AccountID, s.store.UpdateWorkflow(ctx, w))
}

func (s notifyingStore) SetWorkflowState(ctx context.Context, accountID, name, state string) error {
	return s.changed(accountID, s.store.SetWorkflowState(ctx, accountID, name, state))
}

func (s notifyingStore) DeleteWorkflow(ctx context.Context, accountID, name string) error {
	return s.changed(accountID, s.store.DeleteWorkflow(ctx, accountID, name))
}

func (s notifyingStore) EnqueueRuns(ctx context.Context, accountID, workflow, owner string, cursor int64, runs []*herald.WorkflowRun, events []*herald.Event) error {
	return s.saved(accountID, events, s.store.EnqueueRuns(ctx, accountID, workflow, owner, cursor, runs, events))
}

func (s notifyingStore) SaveRun(ctx context.Context, r *herald.WorkflowRun, owner string, leaseUntil time.Time, events []*herald.Event) error {
	return s.saved(r.AccountID, events, s.store.SaveRun(ctx, r, owner, leaseUntil, events))
}

func (s notifyingStore) CreateWork(ctx context.Context, w *herald.Work) error {
	return s.changed(w.AccountID, s.store.CreateWork(ctx, w))
}

func (s notifyingStore) UpdateWork(ctx context.Context, w *herald.Work) error {
	return s.changed(w.AccountID, s.store.UpdateWork(ctx, w))
}

func (s notifyingStore) SetWorkState(ctx context.Context, accountID, id, state, reason string) error {
	return s.changed(accountID, s.store.SetWorkState(ctx, accountID, id, state, reason))
}

func (s notifyingStore) RunWorkNow(ctx context.Context, accountID, id string, at time.Time) error {
	return s.changed(accountID, s.store.RunWorkNow(ctx, accountID, id, at))
}

func (s notifyingStore) DeleteWork(ctx context.Context, accountID, id string) error {
	return s.changed(accountID, s.store.DeleteWork(ctx, accountID, id))
}

func (s notifyingStore) SaveWorkProgress(ctx context.Context, p *herald.WorkProgress) error {
	return s.saved(p.AccountID, p.Events, s.store.SaveWorkProgress(ctx, p))
}
