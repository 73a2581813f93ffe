package herald

import (
	"bytes"
	"context"
	"encoding/json"
	"time"
)

// Origins of an event.
const (
	OriginAPI    = "api"    // sent by a client
	OriginSystem = "system" // written by Herald itself
)

// Limits on what a client may send.
const (
	MaxEventBytes  = 256 << 10 // one event, as sent
	MaxBatchEvents = 1000      // events in one batch request
	MaxBatchBytes  = 5 << 20   // one batch request body
	MaxIDLength    = 128       // an event id
)

// Event is the envelope every event has, whether a client sent it or Herald
// wrote it. Field names follow the banking event message (DESIGN.md §1).
//
// An Event is immutable once stored: Body holds the exact JSON that was
// stored, and readers return it as it is.
type Event struct {
	ID               string          `json:"id"`
	Seq              int64           `json:"seq"`
	Category         string          `json:"category"`
	Type             string          `json:"type"`
	OccurredAt       time.Time       `json:"occurredAt"`
	ReceivedAt       time.Time       `json:"receivedAt"`
	AgentID          string          `json:"agentId,omitempty"`
	AgentType        string          `json:"agentType,omitempty"`
	CoreCustomerID   string          `json:"coreCustomerId,omitempty"`
	CustomerSerialID string          `json:"customerSerialId,omitempty"`
	Host             string          `json:"host,omitempty"`
	PrimaryID        string          `json:"primaryId,omitempty"`
	SecondaryID      string          `json:"secondaryId,omitempty"`
	SessionID        string          `json:"sessionId,omitempty"`
	EventStatus      string          `json:"eventStatus,omitempty"`
	EventLifecycleID string          `json:"eventLifecycleId,omitempty"`
	Data             json.RawMessage `json:"data,omitempty"`
	Origin           string          `json:"origin"`
	// Redacted is set when the entity's profile was erased: the event
	// keeps its envelope for the record but has lost data and host.
	Redacted bool `json:"redacted,omitempty"`

	// AccountID is the account the event belongs to. Event ids are unique
	// per account only.
	AccountID string `json:"-"`
	// Hash identifies the content the client sent (see ParseEvent). Sending
	// the same id again is a duplicate when the hash is equal, and a
	// conflict when it is not.
	Hash string `json:"-"`
	// Body is the stored JSON of the event, set by the store.
	Body json.RawMessage `json:"-"`
	// Def is the registered type the event was validated against on its
	// way in; nil for an unregistered type. Stores keep lifecycles and
	// profiles by its rules.
	Def *EventType `json:"-"`
}

// MarshalEvent encodes e as it is stored: compact, without HTML escaping,
// so that what the client sent in data comes back byte for byte (less
// insignificant white space).
func MarshalEvent(e *Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// AppendBatch is one request's events on their way into the store. Events
// must be complete (ID, ReceivedAt, OccurredAt, Origin, Hash set); the store
// assigns Seq and fills Results, one per event, in order.
type AppendBatch struct {
	AccountID string
	Events    []*Event
	// Atomic asks for all or none: if any event fails, none is stored.
	Atomic  bool
	Results []AppendResult
}

// AppendResult is what became of one event of an AppendBatch.
type AppendResult struct {
	Seq        int64
	ReceivedAt time.Time
	// Duplicate is true when an event with the same id and the same content
	// was already stored; Seq and ReceivedAt are then the original's.
	Duplicate bool
	// Err is set when the event was not stored: ECONFLICT when its id is
	// taken by different content, or when it belongs to an atomic batch in
	// which another event failed.
	Err error
}

// EventFilter selects events. Zero fields do not filter. Results are
// ordered by Seq, ascending.
type EventFilter struct {
	Category         string
	Type             string
	EventStatus      string
	EventLifecycleID string
	CoreCustomerID   string
	// EntityID selects the events of one entity (see Event.EntityID).
	EntityID  string
	AgentID   string
	SessionID string
	PrimaryID string
	Origin    string
	// OccurredAfter is inclusive, OccurredBefore exclusive: the usual
	// half-open range, so consecutive ranges neither overlap nor leave gaps.
	OccurredAfter  time.Time
	OccurredBefore time.Time
	// AfterSeq returns only events with a greater seq.
	AfterSeq int64
	// Limit caps the number of events returned; it must be positive.
	Limit int
	// BodiesOnly asks for events with only Seq, ID, AccountID and Body set:
	// for callers that pass stored events on as they are (the list API),
	// it saves decoding every body, which is most of a query's CPU.
	BodiesOnly bool
}

// EventService stores and finds events.
type EventService interface {
	// AppendEvents stores the events of all batches in one transaction and
	// fills each batch's Results. Seq grows per account in commit order: a
	// reader that has seen seq n will never later find a new event below n.
	// An error means nothing was stored.
	AppendEvents(ctx context.Context, batches []*AppendBatch) error
	// FindEventByID returns ENOTFOUND if the account has no such event.
	FindEventByID(ctx context.Context, accountID, id string) (*Event, error)
	// FindEvents returns up to f.Limit events of the account.
	FindEvents(ctx context.Context, accountID string, f EventFilter) ([]*Event, error)
}
