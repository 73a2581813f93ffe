package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"
)

// Profile is what Herald knows of one entity (DESIGN.md §3): the customer
// events are about (see Event.EntityID). Every event of the entity counts;
// only the events whose status persists (EventType.Persists) write
// attributes. Like a lifecycle, a profile depends on the set of its events,
// not on their arrival order: an attribute holds the value of the latest
// event, by occurredAt, that set it.
type Profile struct {
	ID         string               `json:"id"`
	Attributes map[string]Attribute `json:"attributes"`
	// FirstSeenAt and LastSeenAt are the earliest and latest occurredAt of
	// the entity's events.
	FirstSeenAt time.Time `json:"firstSeenAt"`
	LastSeenAt  time.Time `json:"lastSeenAt"`
	EventCount  int64     `json:"eventCount"`
	// Counts are the entity's events by "category/type".
	Counts map[string]int64 `json:"counts"`
	// FirstSeq is the seq of the event that created the profile: lists
	// are ordered by it.
	FirstSeq  int64     `json:"firstSeq"`
	LastSeq   int64     `json:"lastSeq"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`

	AccountID string `json:"-"`
}

// Attribute is one value of a profile and the event that set it.
type Attribute struct {
	Value      json.RawMessage `json:"value"`
	EventID    string          `json:"eventId"`
	Seq        int64           `json:"seq"`
	OccurredAt time.Time       `json:"occurredAt"`
}

func (a Attribute) stamp() Stamp { return Stamp{OccurredAt: a.OccurredAt, Seq: a.Seq} }

// NewProfile returns an empty profile, ready for Apply.
func NewProfile(accountID, id string) *Profile {
	return &Profile{ID: id, AccountID: accountID, Attributes: map[string]Attribute{}, Counts: map[string]int64{}}
}

// Apply counts the stored event e (Seq set) and, when its status persists
// for its type t (nil for an unregistered type), writes its data to the
// profile's attributes: every top-level field of data, or the fields the
// type lists. An attribute is named by its pointer into data, less the
// leading /data/: "email", "address/city".
func (p *Profile) Apply(e *Event, t *EventType) error {
	if p.EventCount == 0 {
		p.FirstSeenAt, p.LastSeenAt = e.OccurredAt, e.OccurredAt
		p.FirstSeq, p.CreatedAt = e.Seq, e.ReceivedAt
	}
	p.EventCount++
	p.Counts[e.Category+"/"+e.Type]++
	if e.OccurredAt.Before(p.FirstSeenAt) {
		p.FirstSeenAt = e.OccurredAt
	}
	if e.OccurredAt.After(p.LastSeenAt) {
		p.LastSeenAt = e.OccurredAt
	}
	p.FirstSeq, p.LastSeq = min(p.FirstSeq, e.Seq), max(p.LastSeq, e.Seq)
	if e.ReceivedAt.After(p.UpdatedAt) {
		p.UpdatedAt = e.ReceivedAt
	}
	if len(e.Data) == 0 || !t.Persists(e.EventStatus) {
		return nil
	}
	values, err := profileValues(e.Data, t.ProfileFields)
	if err != nil {
		return fmt.Errorf("profile %s: event %s: %w", p.ID, e.ID, err)
	}
	s := StampOf(e)
	for name, v := range values {
		if old, ok := p.Attributes[name]; ok && s.Before(old.stamp()) {
			continue
		}
		p.Attributes[name] = Attribute{Value: v, EventID: e.ID, Seq: e.Seq, OccurredAt: e.OccurredAt}
	}
	return nil
}

// profileValues returns the values of data that persist, by attribute
// name: every top-level field when fields is empty, else the fields at
// those pointers that data has.
func profileValues(data json.RawMessage, fields []string) (map[string]json.RawMessage, error) {
	if len(fields) == 0 {
		all, ok := members(data)
		if !ok {
			return nil, fmt.Errorf("data is not a JSON object")
		}
		values := make(map[string]json.RawMessage, len(all))
		for _, m := range all {
			values[escapePointer(m.key())] = m.value
		}
		return values, nil
	}
	values := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		if v, ok := ResolvePointer(data, strings.TrimPrefix(f, "/data")); ok {
			values[strings.TrimPrefix(f, "/data/")] = v
		}
	}
	return values, nil
}

// Clone returns a deep copy of p, for a caller that may have to undo Apply.
func (p *Profile) Clone() *Profile {
	c := *p
	c.Attributes = maps.Clone(p.Attributes)
	c.Counts = maps.Clone(p.Counts)
	return &c
}

// ProfileFilter selects profiles. Zero fields do not filter. Results are
// ordered by FirstSeq, ascending: the order profiles were created in.
type ProfileFilter struct {
	// SeenAfter (inclusive) and SeenBefore (exclusive) bound the
	// profile's LastSeenAt.
	SeenAfter  time.Time
	SeenBefore time.Time
	// Attribute and Value, when both set, keep profiles whose attribute
	// of that name holds that JSON value, compared as JSON values (key
	// order and white space do not matter; "1" is not 1).
	Attribute string
	Value     json.RawMessage
	// AfterSeq returns only profiles whose FirstSeq is greater: the
	// cursor of the next page.
	AfterSeq int64
	// Limit caps the number returned; it must be positive.
	Limit int
}

// ProfileService reads and erases profiles; AppendEvents writes them.
type ProfileService interface {
	// FindProfile returns ENOTFOUND if the account has no such profile.
	FindProfile(ctx context.Context, accountID, id string) (*Profile, error)
	// FindProfiles returns up to f.Limit profiles; EINVALID if f.Limit is
	// not positive.
	FindProfiles(ctx context.Context, accountID string, f ProfileFilter) ([]*Profile, error)
	// EraseProfile deletes the profile and, in the same transaction,
	// redacts the personal data of the entity's events and lifecycles
	// (right to erasure): each event keeps its envelope but loses data and
	// host and gains redacted: true; each lifecycle an event of the entity
	// joined loses its merged data, whoever its EntityID names. It returns
	// how many events it redacted (events redacted before are not counted
	// again), and ENOTFOUND if the account has neither a profile nor events
	// of that entity.
	EraseProfile(ctx context.Context, accountID, id string) (redacted int64, err error)
}
