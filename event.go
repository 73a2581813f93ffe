package herald

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"time"
)

// Flags of a stored event.
const (
	// FlagSessionUnknown: the event names a session Herald does not know.
	FlagSessionUnknown = "sessionUnknown"
	// FlagSessionEnded: the event names a session that had ended.
	FlagSessionEnded = "sessionEnded"
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
	// Flags note what Herald found odd about the event when it stored it
	// (FlagSessionUnknown, FlagSessionEnded); the event is stored all the
	// same.
	Flags []string `json:"flags,omitempty"`
	// ChainHash links a system event into its account's audit chain (see
	// audit.go); other events have none.
	ChainHash string `json:"hash,omitempty"`

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

	// prepared is the event encoded by PrepareBody, with seq 0.
	prepared []byte
}

// MarshalEvent encodes e as it is stored: compact, without HTML escaping,
// so that what the client sent in data comes back byte for byte (less
// insignificant white space). When PrepareBody encoded e beforehand, it
// only puts the seq in, once: the prepared body is for the store's append,
// and any later call encodes the event as it is then.
func MarshalEvent(e *Event) ([]byte, error) {
	if prepared := e.prepared; prepared != nil {
		e.prepared = nil
		if b, ok := withSeq(prepared, e.ID, e.Seq); ok {
			return b, nil
		}
	}
	return marshalEvent(e)
}

func marshalEvent(e *Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// PrepareBody encodes e as it will be stored, but for its seq, so that the
// store, which gives seqs one commit at a time, has only the seq to put in
// (MarshalEvent): the encoding runs in the request, in parallel, not in
// the commit. Call it once every field but Seq is final; a later change
// to the event must call it again.
func (e *Event) PrepareBody() error {
	seq := e.Seq
	e.Seq, e.prepared = 0, nil
	b, err := marshalEvent(e)
	e.Seq = seq
	if err != nil {
		return err
	}
	e.prepared = b
	return nil
}

// withSeq returns the body prepared for the event with the given id, with
// seq in place of its 0. The body starts {"id":"<id>","seq":0, since id
// and seq are the first fields of Event; an id that needed escaping
// does not match, and the caller encodes the event afresh.
func withSeq(prepared []byte, id string, seq int64) ([]byte, bool) {
	const head, zero = `{"id":"`, `","seq":0,`
	n := len(head) + len(id)
	if len(prepared) < n+len(zero) || string(prepared[len(head):n]) != id || string(prepared[n:n+len(zero)]) != zero {
		return nil, false
	}
	b := make([]byte, 0, len(prepared)+20)
	b = append(b, prepared[:n+len(zero)-2]...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, prepared[n+len(zero)-1:]...), true
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
	// By is who sent the events: the agent of the system events they
	// cause (a profile created, a session started).
	By Actor
}

// AppendResult is what became of one event of an AppendBatch.
type AppendResult struct {
	Seq        int64
	ReceivedAt time.Time
	// Duplicate is true when an event with the same id and the same content
	// was already stored; Seq and ReceivedAt are then the original's.
	Duplicate bool
	// SessionID is the event's session: the one Herald assigned to a
	// login sent without one, or the one sent.
	SessionID string
	// Flags are the event's flags (see Event.Flags).
	Flags []string
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
	// Types selects events of any of these types (for system events: any
	// of these verbs).
	Types []string
	// Sources selects events of any of these categories, each with any of
	// its primary ids, or any primary id when the list is empty: the
	// Lytics system_event_sources.
	Sources map[string][]string
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
