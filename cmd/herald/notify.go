package main

import (
	"context"
	"time"

	"github.com/heraldhq/herald"
)

// notifier is told which account stored events, so the deliverers of its
// subscriptions look at once instead of at their next poll.
type notifier interface {
	Notify(accountID string)
	Refresh()
}

// notifyingStore is the store with every write that stores events (a
// batch, a system event of a change, a sweep) followed by a word to the
// delivery engine. Reads and delivery bookkeeping pass straight through.
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

// changed is done for a change to a subscription: the engine takes it up
// at once.
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
