package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/mock"
)

// subscriptionStore is the part of memStore that keeps subscriptions and
// their delivery state, as the stores' contract describes them.
type subscriptionStore struct {
	byRef   map[herald.Ref]*herald.Subscription
	order   []herald.Ref // creation order
	secrets map[herald.Ref][]herald.SigningSecret
	// Messages and attempts are kept by subscription, messages by seq and
	// attempts by id.
	messages  map[herald.Ref][]*herald.Message
	attempts  map[herald.Ref][]*herald.Attempt
	attemptID int64
}

func newSubscriptionStore() subscriptionStore {
	return subscriptionStore{
		byRef:    map[herald.Ref]*herald.Subscription{},
		secrets:  map[herald.Ref][]herald.SigningSecret{},
		messages: map[herald.Ref][]*herald.Message{},
		attempts: map[herald.Ref][]*herald.Attempt{},
	}
}

// cloneSubscription returns a deep copy of sub, so that neither the store
// nor its callers see the other's changes.
func cloneSubscription(sub *herald.Subscription) *herald.Subscription {
	b, err := json.Marshal(sub)
	if err != nil {
		panic(err) // a subscription always encodes
	}
	var c herald.Subscription
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	c.AccountID = sub.AccountID
	return &c
}

func (m *memStore) subscriptionService() *mock.SubscriptionService {
	notFound := func(id string) error { return herald.Errorf(herald.ENOTFOUND, "no subscription %s", id) }
	return &mock.SubscriptionService{
		CreateSubscriptionFn: func(ctx context.Context, s *herald.Subscription, secret string) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("CreateSubscription"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: s.AccountID, ID: s.ID}
			if _, ok := m.subs.byRef[ref]; ok {
				return herald.Errorf(herald.ECONFLICT, "subscription %s exists", s.ID)
			}
			c := cloneSubscription(s)
			switch {
			case c.Cursor == 0: // from now on
				c.Cursor = m.seq[s.AccountID]
			case c.Cursor < 0: // the whole log
				c.Cursor = 0
			}
			if err := m.change(ctx, s.AccountID, herald.SubjectSubscription, s.ID, herald.VerbCreated, nil, c); err != nil {
				return err
			}
			m.subs.byRef[ref] = c
			m.subs.order = append(m.subs.order, ref)
			m.subs.secrets[ref] = []herald.SigningSecret{{Secret: secret, CreatedAt: s.CreatedAt}}
			return nil
		},
		FindSubscriptionByIDFn: func(ctx context.Context, accountID, id string) (*herald.Subscription, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindSubscriptionByID"); err != nil {
				return nil, err
			}
			if s, ok := m.subs.byRef[herald.Ref{AccountID: accountID, ID: id}]; ok {
				return cloneSubscription(s), nil
			}
			return nil, notFound(id)
		},
		FindSubscriptionsFn: func(ctx context.Context, accountID string) ([]*herald.Subscription, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindSubscriptions"); err != nil {
				return nil, err
			}
			var out []*herald.Subscription
			for _, ref := range m.subs.order {
				if s, ok := m.subs.byRef[ref]; ok && ref.AccountID == accountID {
					out = append(out, cloneSubscription(s))
				}
			}
			return out, nil
		},
		UpdateSubscriptionFn: func(ctx context.Context, s *herald.Subscription) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("UpdateSubscription"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: s.AccountID, ID: s.ID}
			old, ok := m.subs.byRef[ref]
			if !ok {
				return notFound(s.ID)
			}
			c := cloneSubscription(s)
			c.State, c.StateReason, c.FailingSince, c.Cursor, c.CreatedAt = old.State, old.StateReason, old.FailingSince, old.Cursor, old.CreatedAt
			if err := m.change(ctx, s.AccountID, herald.SubjectSubscription, s.ID, herald.VerbUpdated, old, c); err != nil {
				return err
			}
			m.subs.byRef[ref] = c
			return nil
		},
		SetSubscriptionStateFn: func(ctx context.Context, accountID, id, state, reason string) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("SetSubscriptionState"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: accountID, ID: id}
			old, ok := m.subs.byRef[ref]
			if !ok {
				return notFound(id)
			}
			c := cloneSubscription(old)
			c.State, c.StateReason = state, reason
			verb := herald.VerbUpdated
			if state == herald.SubscriptionDisabled {
				verb = herald.VerbFailed
			}
			if err := m.change(ctx, accountID, herald.SubjectSubscription, id, verb, old, c); err != nil {
				return err
			}
			m.subs.byRef[ref] = c
			return nil
		},
		DeleteSubscriptionFn: func(ctx context.Context, accountID, id string) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("DeleteSubscription"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: accountID, ID: id}
			old, ok := m.subs.byRef[ref]
			if !ok {
				return notFound(id)
			}
			if err := m.change(ctx, accountID, herald.SubjectSubscription, id, herald.VerbDeleted, old, nil); err != nil {
				return err
			}
			delete(m.subs.byRef, ref)
			delete(m.subs.secrets, ref)
			delete(m.subs.messages, ref)
			delete(m.subs.attempts, ref)
			return nil
		},
		FindSigningSecretsFn: func(ctx context.Context, accountID, id string) ([]herald.SigningSecret, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindSigningSecrets"); err != nil {
				return nil, err
			}
			ref := herald.Ref{AccountID: accountID, ID: id}
			if _, ok := m.subs.byRef[ref]; !ok {
				return nil, notFound(id)
			}
			now := m.now()
			var out []herald.SigningSecret
			for _, sec := range m.subs.secrets[ref] {
				if sec.ExpiresAt == nil || sec.ExpiresAt.After(now) {
					out = append(out, sec)
				}
			}
			return out, nil
		},
		RotateSigningSecretFn: func(ctx context.Context, accountID, id, secret string, oldExpiresAt time.Time) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("RotateSigningSecret"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: accountID, ID: id}
			if _, ok := m.subs.byRef[ref]; !ok {
				return notFound(id)
			}
			old := slices.Clone(m.subs.secrets[ref])
			for i := range old {
				if old[i].ExpiresAt == nil {
					at := oldExpiresAt
					old[i].ExpiresAt = &at
				}
			}
			m.subs.secrets[ref] = append([]herald.SigningSecret{{Secret: secret, CreatedAt: m.now()}}, old...)
			return nil
		},
	}
}

func (m *memStore) deliveryService() *mock.DeliveryService {
	return &mock.DeliveryService{
		FindMessagesFn: func(ctx context.Context, accountID, subscriptionID string, f herald.MessageFilter) ([]*herald.Message, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindMessages"); err != nil {
				return nil, err
			}
			if f.Limit <= 0 {
				return nil, fmt.Errorf("limit %d", f.Limit)
			}
			var out []*herald.Message
			for _, msg := range m.subs.messages[herald.Ref{AccountID: accountID, ID: subscriptionID}] {
				if len(out) == f.Limit {
					break
				}
				if messageMatches(msg, f) {
					c := *msg
					out = append(out, &c)
				}
			}
			return out, nil
		},
		RetryMessagesFn: func(ctx context.Context, accountID, subscriptionID string, f herald.MessageFilter, now time.Time) (int, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("RetryMessages"); err != nil {
				return 0, err
			}
			n := 0
			for _, msg := range m.subs.messages[herald.Ref{AccountID: accountID, ID: subscriptionID}] {
				if msg.State == herald.MessageDead && messageMatches(msg, f) {
					msg.State, msg.Attempts, msg.NextAttemptAt, msg.UpdatedAt = herald.MessageRetrying, 0, now, now
					n++
				}
			}
			return n, nil
		},
		FindAttemptsFn: func(ctx context.Context, accountID, subscriptionID string, f herald.AttemptFilter) ([]*herald.Attempt, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindAttempts"); err != nil {
				return nil, err
			}
			if f.Limit <= 0 {
				return nil, fmt.Errorf("limit %d", f.Limit)
			}
			list := m.subs.attempts[herald.Ref{AccountID: accountID, ID: subscriptionID}]
			var out []*herald.Attempt
			for i := len(list) - 1; i >= 0 && len(out) < f.Limit; i-- {
				a := list[i]
				if (f.Outcome == "" || a.Outcome == f.Outcome) && (f.EventID == "" || a.EventID == f.EventID) &&
					(f.After.IsZero() || !a.At.Before(f.After)) && (f.Before.IsZero() || a.At.Before(f.Before)) &&
					(f.BeforeID == 0 || a.ID < f.BeforeID) {
					c := *a
					out = append(out, &c)
				}
			}
			return out, nil
		},
	}
}

func messageMatches(msg *herald.Message, f herald.MessageFilter) bool {
	return (f.State == "" || msg.State == f.State) &&
		(len(f.EventIDs) == 0 || slices.Contains(f.EventIDs, msg.EventID)) &&
		(f.After.IsZero() || !msg.CreatedAt.Before(f.After)) &&
		(f.Before.IsZero() || msg.CreatedAt.Before(f.Before)) &&
		msg.Seq > f.AfterSeq
}

// addAttempt records an attempt of a subscription, as a deliverer would,
// and returns its id.
func (m *memStore) addAttempt(a herald.Attempt) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs.attemptID++
	a.ID = m.subs.attemptID
	ref := herald.Ref{AccountID: a.AccountID, ID: a.SubscriptionID}
	m.subs.attempts[ref] = append(m.subs.attempts[ref], &a)
	return a.ID
}

// addMessage stores a message of a subscription, kept by seq.
func (m *memStore) addMessage(msg herald.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ref := herald.Ref{AccountID: msg.AccountID, ID: msg.SubscriptionID}
	list := append(m.subs.messages[ref], &msg)
	slices.SortFunc(list, func(a, b *herald.Message) int { return cmp.Compare(a.Seq, b.Seq) })
	m.subs.messages[ref] = list
}

// subscription returns the stored subscription, nil if there is none.
func (m *memStore) subscription(accountID, id string) *herald.Subscription {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.subs.byRef[herald.Ref{AccountID: accountID, ID: id}]; ok {
		return cloneSubscription(s)
	}
	return nil
}
