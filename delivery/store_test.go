package delivery

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/heraldhq/herald"
)

// memStore is an in-memory Store that keeps the contract of the SQL
// stores (see herald.DeliveryService), enough for the engine's tests.
type memStore struct {
	mu        sync.Mutex
	events    map[string][]*herald.Event
	subs      map[subKey]*subRow
	messages  map[subKey]map[int64]*herald.Message
	attempts  map[subKey][]*herald.Attempt
	attemptID int64

	// Observations and faults for tests.
	saves      int
	dueCalls   int
	recovered  int
	saveErr    error
	stateCalls []string
}

type subRow struct {
	sub        herald.Subscription
	leaseOwner string
	leaseUntil time.Time
	secrets    []herald.SigningSecret
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{
		events:   make(map[string][]*herald.Event),
		subs:     make(map[subKey]*subRow),
		messages: make(map[subKey]map[int64]*herald.Message),
		attempts: make(map[subKey][]*herald.Attempt),
	}
}

// appendEvents stores events as the SQL stores do: the next seq, and the
// body as MarshalEvent writes it.
func (s *memStore) appendEvents(accountID string, evs ...*herald.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range evs {
		e.AccountID = accountID
		e.Seq = int64(len(s.events[accountID]) + 1)
		if e.Origin == "" {
			e.Origin = herald.OriginAPI
		}
		if e.ReceivedAt.IsZero() {
			e.ReceivedAt = time.Now().UTC().Truncate(time.Microsecond)
			e.OccurredAt = e.ReceivedAt
		}
		b, err := herald.MarshalEvent(e)
		if err != nil {
			panic(err)
		}
		e.Body = b
		s.events[accountID] = append(s.events[accountID], e)
	}
}

// addSubscription stores sub with its secrets, current first.
func (s *memStore) addSubscription(sub *herald.Subscription, secrets ...herald.SigningSecret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *sub
	c.SetDefaults()
	s.subs[subKey{c.AccountID, c.ID}] = &subRow{sub: c, secrets: secrets}
}

func (s *memStore) subscription(accountID, id string) herald.Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[subKey{accountID, id}].sub
}

func (s *memStore) attemptsOf(accountID, id string) []*herald.Attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts[subKey{accountID, id}])
}

func (s *memStore) messagesOf(accountID, id string) []*herald.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*herald.Message
	for _, m := range s.messages[subKey{accountID, id}] {
		c := *m
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

func (s *memStore) LeaseSubscriptions(_ context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]subKey, 0, len(s.subs))
	for k := range s.subs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].id < keys[j].id })
	var out []*herald.Subscription
	for _, k := range keys {
		r := s.subs[k]
		if r.sub.State != herald.SubscriptionActive || len(out) >= max {
			continue
		}
		if r.leaseOwner == owner || r.leaseOwner == "" || r.leaseUntil.Before(now) {
			r.leaseOwner, r.leaseUntil = owner, now.Add(ttl)
			c := r.sub
			if r.sub.FailingSince != nil {
				t := *r.sub.FailingSince
				c.FailingSince = &t
			}
			out = append(out, &c)
		}
	}
	return out, nil
}

func (s *memStore) ReleaseSubscriptions(_ context.Context, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.subs {
		if r.leaseOwner == owner {
			r.leaseOwner, r.leaseUntil = "", time.Time{}
		}
	}
	return nil
}

func (s *memStore) SaveDelivery(_ context.Context, p *herald.DeliveryProgress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saveErr != nil {
		return s.saveErr
	}
	k := subKey{p.AccountID, p.SubscriptionID}
	r := s.subs[k]
	if r == nil {
		return herald.Errorf(herald.ENOTFOUND, "subscription %s not found", p.SubscriptionID)
	}
	if r.leaseOwner != p.Owner {
		return herald.Errorf(herald.ECONFLICT, "lease lost")
	}
	s.saves++
	for _, a := range p.Attempts {
		s.attemptID++
		c := *a
		c.ID = s.attemptID
		s.attempts[k] = append(s.attempts[k], &c)
	}
	if s.messages[k] == nil {
		s.messages[k] = make(map[int64]*herald.Message)
	}
	for _, m := range p.Messages {
		c := *m
		s.messages[k][m.Seq] = &c
	}
	for _, seq := range p.Done {
		delete(s.messages[k], seq)
	}
	if p.Cursor > r.sub.Cursor {
		r.sub.Cursor = p.Cursor
	}
	if p.FailingSince != nil && r.sub.FailingSince == nil {
		t := *p.FailingSince
		r.sub.FailingSince = &t
	}
	if p.ClearFailing && r.sub.FailingSince != nil {
		r.sub.FailingSince = nil
		s.recovered++
	}
	return nil
}

func (s *memStore) DueMessages(_ context.Context, accountID, subscriptionID string, now time.Time, limit int) ([]*herald.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dueCalls++
	all := make([]*herald.Message, 0, len(s.messages[subKey{accountID, subscriptionID}]))
	for _, m := range s.messages[subKey{accountID, subscriptionID}] {
		all = append(all, m)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	seenKey := map[string]bool{}
	var out []*herald.Message
	for _, m := range all {
		if m.State == herald.MessageDead {
			continue
		}
		due := m.State == herald.MessageRetrying && !m.NextAttemptAt.After(now)
		if m.OrderKey != "" {
			if seenKey[m.OrderKey] {
				continue // not the oldest of its key
			}
			seenKey[m.OrderKey] = true
			due = due || m.State == herald.MessageWaiting
		}
		if due && len(out) < limit {
			c := *m
			out = append(out, &c)
		}
	}
	return out, nil
}

func (s *memStore) FindMessages(_ context.Context, accountID, subscriptionID string, f herald.MessageFilter) ([]*herald.Message, error) {
	var out []*herald.Message
	for _, m := range s.messagesOf(accountID, subscriptionID) {
		if f.State != "" && m.State != f.State || m.Seq <= f.AfterSeq ||
			len(f.EventIDs) > 0 && !slices.Contains(f.EventIDs, m.EventID) {
			continue
		}
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *memStore) RetryMessages(_ context.Context, accountID, subscriptionID string, f herald.MessageFilter, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.messages[subKey{accountID, subscriptionID}] {
		if m.State == herald.MessageDead && (len(f.EventIDs) == 0 || slices.Contains(f.EventIDs, m.EventID)) {
			m.State, m.Attempts, m.NextAttemptAt = herald.MessageRetrying, 0, now
			n++
		}
	}
	return n, nil
}

func (s *memStore) FindAttempts(_ context.Context, accountID, subscriptionID string, f herald.AttemptFilter) ([]*herald.Attempt, error) {
	all := s.attemptsOf(accountID, subscriptionID)
	var out []*herald.Attempt
	for i := len(all) - 1; i >= 0 && len(out) < f.Limit; i-- {
		if a := all[i]; f.Outcome == "" || a.Outcome == f.Outcome {
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *memStore) PruneAttempts(_ context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, list := range s.attempts {
		kept := list[:0]
		for _, a := range list {
			if n < limit && a.At.Before(before) {
				n++
				continue
			}
			kept = append(kept, a)
		}
		s.attempts[k] = kept
	}
	return n, nil
}

func (s *memStore) SetSubscriptionState(_ context.Context, accountID, id, state, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.subs[subKey{accountID, id}]
	if r == nil {
		return herald.Errorf(herald.ENOTFOUND, "subscription %s not found", id)
	}
	r.sub.State, r.sub.StateReason = state, reason
	s.stateCalls = append(s.stateCalls, state+": "+reason)
	return nil
}

func (s *memStore) FindSigningSecrets(_ context.Context, accountID, id string) ([]herald.SigningSecret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.subs[subKey{accountID, id}]
	if r == nil {
		return nil, herald.Errorf(herald.ENOTFOUND, "subscription %s not found", id)
	}
	return slices.Clone(r.secrets), nil
}

// FindEvents filters on what the engine's filters ask of a store.
func (s *memStore) FindEvents(_ context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*herald.Event
	for _, e := range s.events[accountID] {
		if e.Seq <= f.AfterSeq ||
			f.Origin != "" && e.Origin != f.Origin ||
			f.Category != "" && e.Category != f.Category ||
			f.EventStatus != "" && e.EventStatus != f.EventStatus ||
			f.EntityID != "" && e.EntityID() != f.EntityID ||
			len(f.Types) > 0 && !slices.Contains(f.Types, e.Type) ||
			!herald.MatchSources(f.Sources, e) {
			continue
		}
		out = append(out, e)
		if len(out) >= f.Limit {
			break
		}
	}
	return out, nil
}

// updateSubscription changes a subscription's settings, as
// UpdateSubscription would.
func (s *memStore) updateSubscription(accountID, id string, change func(*herald.Subscription)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(&s.subs[subKey{accountID, id}].sub)
}
