package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Lifecycle is the record of the events of one account that share an
// eventLifecycleId (DESIGN.md §3): a login attempted then succeeded, a
// transaction pending then approved. Stores keep it in the same commit as
// its events, by Apply.
//
// Events may arrive out of order. Everything here is a function of the set
// of events, not of the order they arrived in: the history is ordered by
// occurredAt (then seq), the current status is the latest terminal status
// if there is one and else the latest status, and each top-level field of
// the merged data holds the value of the latest event that has it.
type Lifecycle struct {
	ID       string `json:"id"`
	Category string `json:"category"`
	Type     string `json:"type"`
	// Status is the current status: "" while no event has had one.
	Status   string `json:"status,omitempty"`
	Terminal bool   `json:"terminal"`
	// EntityID is the entity of the first event stored that had one. The
	// events of a lifecycle are about one entity; if they name several,
	// this one field depends on arrival order.
	EntityID string          `json:"entityId,omitempty"`
	History  []LifecycleStep `json:"history"`
	// Data merges the data of the lifecycle's events.
	Data            json.RawMessage `json:"data,omitempty"`
	EventCount      int             `json:"eventCount"`
	FirstOccurredAt time.Time       `json:"firstOccurredAt"`
	LastOccurredAt  time.Time       `json:"lastOccurredAt"`
	FirstSeq        int64           `json:"firstSeq"`
	LastSeq         int64           `json:"lastSeq"`
	// UpdatedAt is the receivedAt of the newest event.
	UpdatedAt time.Time `json:"updatedAt"`
	// Redacted is set when the entity's profile was erased: Data is gone.
	Redacted bool `json:"redacted,omitempty"`
	// Events are the lifecycle's events by occurredAt, filled when one
	// lifecycle is read, not when lists are.
	Events []*Event `json:"events,omitempty"`

	AccountID string `json:"-"`
	// DataStamps says, for each top-level field of Data, which event set
	// it. Stores keep it with the lifecycle; Apply needs it.
	DataStamps map[string]Stamp `json:"-"`
}

// MaxLifecycleEvents bounds the events of one lifecycle. A lifecycle
// follows one thing (a login, a payment) through a few statuses; one with
// thousands of events is a lifecycle id that many unrelated events share,
// such as a type's lifecycleIdPointer naming a common field, and each
// event would rewrite an ever longer history. The event past the bound is
// refused, naming the cause.
const MaxLifecycleEvents = 1000

// LifecycleStep is one status of a lifecycle's history.
type LifecycleStep struct {
	Status string `json:"status"`
	// Terminal is whether the status was terminal for the type when the
	// event was stored.
	Terminal   bool      `json:"terminal"`
	EventID    string    `json:"eventId"`
	Seq        int64     `json:"seq"`
	OccurredAt time.Time `json:"occurredAt"`
}

// Stamp places an event in occurredAt order, ties broken by seq.
type Stamp struct {
	OccurredAt time.Time `json:"occurredAt"`
	Seq        int64     `json:"seq"`
	EventID    string    `json:"eventId,omitempty"`
}

// Before reports whether s comes before o.
func (s Stamp) Before(o Stamp) bool {
	if !s.OccurredAt.Equal(o.OccurredAt) {
		return s.OccurredAt.Before(o.OccurredAt)
	}
	return s.Seq < o.Seq
}

// StampOf returns the stamp of a stored event.
func StampOf(e *Event) Stamp {
	return Stamp{OccurredAt: e.OccurredAt, Seq: e.Seq, EventID: e.ID}
}

func (s LifecycleStep) stamp() Stamp { return Stamp{OccurredAt: s.OccurredAt, Seq: s.Seq} }

// Apply adds the stored event e (Seq set) to the lifecycle, under the
// rules of its type t (nil for an unregistered type). It returns an
// EINVALID error naming the event's field, and leaves l unchanged, when e
// may not join: it is of another type, or its status may not follow the
// one before it (or precede the one after it).
func (l *Lifecycle) Apply(e *Event, t *EventType) error {
	if err := l.check(e, t); err != nil {
		return err
	}
	if l.EventCount == 0 {
		l.Category, l.Type = e.Category, e.Type
		l.FirstOccurredAt, l.LastOccurredAt = e.OccurredAt, e.OccurredAt
		l.FirstSeq = e.Seq
	}
	if l.EntityID == "" {
		l.EntityID = e.EntityID()
	}
	l.EventCount++
	if e.OccurredAt.Before(l.FirstOccurredAt) {
		l.FirstOccurredAt = e.OccurredAt
	}
	if e.OccurredAt.After(l.LastOccurredAt) {
		l.LastOccurredAt = e.OccurredAt
	}
	l.FirstSeq, l.LastSeq = min(l.FirstSeq, e.Seq), max(l.LastSeq, e.Seq)
	if e.ReceivedAt.After(l.UpdatedAt) {
		l.UpdatedAt = e.ReceivedAt
	}
	if e.EventStatus != "" {
		step := LifecycleStep{Status: e.EventStatus, Terminal: t.Terminal(e.EventStatus), EventID: e.ID, Seq: e.Seq, OccurredAt: e.OccurredAt}
		pos := l.position(StampOf(e))
		l.History = slices.Insert(l.History, pos, step)
		l.Status, l.Terminal = currentStatus(l.History)
	}
	if len(e.Data) > 0 && !l.Redacted {
		merged, err := mergeData(l.Data, l.DataStamps, e)
		if err != nil {
			return fmt.Errorf("lifecycle %s: %w", l.ID, err)
		}
		l.Data = merged
	}
	return nil
}

// check returns why e may not join the lifecycle, or nil.
func (l *Lifecycle) check(e *Event, t *EventType) error {
	if l.EventCount >= MaxLifecycleEvents {
		return FieldErrorf("/eventLifecycleId", "lifecycle %q already has %d events, the most one may have; "+
			"a lifecycle follows one thing through its statuses (is the id, or the type's lifecycleIdPointer, shared by unrelated events?)",
			l.ID, MaxLifecycleEvents)
	}
	if l.EventCount > 0 && (l.Category != e.Category || l.Type != e.Type) {
		return FieldErrorf("/eventLifecycleId", "%q is a lifecycle of type %s/%s; an event of type %s/%s cannot join it",
			l.ID, l.Category, l.Type, e.Category, e.Type)
	}
	if e.EventStatus == "" || t == nil || len(t.Transitions) == 0 {
		return nil
	}
	pos := l.position(StampOf(e))
	if pos > 0 {
		prev := l.History[pos-1]
		if !t.Allows(prev.Status, e.EventStatus) {
			return FieldErrorf("/eventStatus", "%q may not follow %q (event %s) in lifecycle %q; after %q come: %s",
				e.EventStatus, prev.Status, prev.EventID, l.ID, prev.Status, listOrNone(t.Transitions[prev.Status]))
		}
	}
	if pos < len(l.History) {
		next := l.History[pos]
		if !t.Allows(e.EventStatus, next.Status) {
			return FieldErrorf("/eventStatus", "%q may not come before %q (event %s, which occurred later) in lifecycle %q; after %q come: %s",
				e.EventStatus, next.Status, next.EventID, l.ID, e.EventStatus, listOrNone(t.Transitions[e.EventStatus]))
		}
	}
	return nil
}

// position returns where a step stamped s goes in the history.
func (l *Lifecycle) position(s Stamp) int {
	pos, _ := slices.BinarySearchFunc(l.History, s, func(step LifecycleStep, s Stamp) int {
		if step.stamp().Before(s) {
			return -1
		}
		return 1
	})
	return pos
}

// currentStatus is the status of the latest terminal step if there is one,
// else of the latest step: a terminal status is never replaced by a
// non-terminal one, however late it occurred.
func currentStatus(history []LifecycleStep) (string, bool) {
	for i := len(history) - 1; i >= 0; i-- {
		if history[i].Terminal {
			return history[i].Status, true
		}
	}
	if len(history) == 0 {
		return "", false
	}
	return history[len(history)-1].Status, false
}

// mergeData returns merged with the top-level fields of e's data that are
// newer than the ones it holds, and records in stamps which event set each.
// Fields are kept sorted by key, so that the result does not depend on the
// order events arrived in.
func mergeData(merged json.RawMessage, stamps map[string]Stamp, e *Event) (json.RawMessage, error) {
	fields, ok := members(e.Data)
	if !ok {
		return nil, fmt.Errorf("data of event %s is not a JSON object", e.ID)
	}
	if len(merged) == 0 {
		for _, f := range fields {
			stamps[f.key()] = StampOf(e)
		}
		return sortedObject(e.Data, fields), nil
	}
	current, ok := members(merged)
	if !ok {
		return nil, fmt.Errorf("merged data is not a JSON object")
	}
	s := StampOf(e)
	changed := false
	for _, f := range fields {
		k := f.key()
		if old, ok := stamps[k]; ok && s.Before(old) {
			continue
		}
		stamps[k] = s
		changed = true
		i := slices.IndexFunc(current, func(m member) bool { return m.key() == k })
		if i < 0 {
			current = append(current, f)
		} else {
			current[i].value = f.value
		}
	}
	if !changed {
		return merged, nil
	}
	return sortedObject(nil, current), nil
}

// sortedObject returns the object of the members sorted by key, the last
// of a repeated key winning as it does in a decoder: obj itself when it is
// that already.
func sortedObject(obj []byte, ms []member) []byte {
	byKey := func(a, b member) int { return strings.Compare(a.key(), b.key()) }
	strictly := true
	for i := 1; i < len(ms) && strictly; i++ {
		strictly = byKey(ms[i-1], ms[i]) < 0
	}
	if obj != nil && strictly {
		return obj
	}
	ms = slices.Clone(ms)
	slices.SortStableFunc(ms, byKey)
	kept := ms[:0]
	for i, m := range ms {
		if i+1 < len(ms) && byKey(m, ms[i+1]) == 0 {
			continue // a later member has the same key
		}
		kept = append(kept, m)
	}
	ms = kept
	size := 2
	for _, m := range ms {
		size += len(m.rawKey) + len(m.value) + 2
	}
	return appendObject(make([]byte, 0, size), ms)
}

// Clone returns a deep copy of l, for a caller that may have to undo Apply.
func (l *Lifecycle) Clone() *Lifecycle {
	c := *l
	c.History = slices.Clone(l.History)
	c.DataStamps = make(map[string]Stamp, len(l.DataStamps))
	for k, v := range l.DataStamps {
		c.DataStamps[k] = v
	}
	c.Events = nil
	return &c
}

// NewLifecycle returns an empty lifecycle, ready for Apply.
func NewLifecycle(accountID, id string) *Lifecycle {
	return &Lifecycle{ID: id, AccountID: accountID, History: []LifecycleStep{}, DataStamps: map[string]Stamp{}}
}

// EntityID returns the entity the event is about: its coreCustomerId, or
// else its agentId when the agent is a customer; "" when there is none.
func (e *Event) EntityID() string {
	if e.CoreCustomerID != "" {
		return e.CoreCustomerID
	}
	if e.AgentID != "" && strings.EqualFold(e.AgentType, "customer") {
		return e.AgentID
	}
	return ""
}

// LifecycleFilter selects lifecycles. Zero fields do not filter. Results
// are ordered by FirstSeq, ascending: the order lifecycles began in, which
// later events do not change.
type LifecycleFilter struct {
	Category string
	Type     string
	Status   string
	// Terminal, when set, keeps only lifecycles that are (or are not)
	// terminal.
	Terminal *bool
	EntityID string
	// OccurredAfter (inclusive) and OccurredBefore (exclusive) bound when
	// the lifecycle began: the occurredAt of its first event.
	OccurredAfter  time.Time
	OccurredBefore time.Time
	// AfterSeq returns only lifecycles whose FirstSeq is greater: the
	// cursor of the next page.
	AfterSeq int64
	// Limit caps the number returned; it must be positive.
	Limit int
}

// LifecycleService reads lifecycles; AppendEvents writes them.
type LifecycleService interface {
	// FindLifecycle returns ENOTFOUND if the account has no such
	// lifecycle. Events are not filled.
	FindLifecycle(ctx context.Context, accountID, id string) (*Lifecycle, error)
	// FindLifecycles returns up to f.Limit lifecycles, without Events;
	// EINVALID if f.Limit is not positive.
	FindLifecycles(ctx context.Context, accountID string, f LifecycleFilter) ([]*Lifecycle, error)
}
