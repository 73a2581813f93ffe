package herald

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Subject types of system events: the category of a system event says
// what it is about (DESIGN.md §4).
const (
	SubjectAccount      = "account"
	SubjectAPIKey       = "apikey"
	SubjectEventType    = "eventtype"
	SubjectSettings     = "settings"
	SubjectEntity       = "entity"
	SubjectSession      = "session"
	SubjectVisit        = "visit"
	SubjectSubscription = "subscription"
	SubjectWork         = "work"
	SubjectWorkflow     = "workflow"
	SubjectAlert        = "alert"
)

// Verbs of system events: the type of a system event says what happened
// to its subject. They are Lytics' verbs, plus ended and terminated for
// sessions and visits.
const (
	VerbCreated      = "created"
	VerbUpdated      = "updated"
	VerbDeleted      = "deleted"
	VerbStarted      = "started"
	VerbEnded        = "ended"
	VerbTerminated   = "terminated"
	VerbCompleted    = "completed"
	VerbFailed       = "failed"
	VerbSyncing      = "syncing"
	VerbSynced       = "synced"
	VerbSyncComplete = "synccomplete"
	// VerbRecovered: a failing subscription delivers again.
	VerbRecovered = "recovered"
)

// Agent types of system events.
const (
	AgentTypeAPIKey = "apikey" // a change made through the API with a key
	AgentTypeSystem = "system" // Herald itself: a timeout, a first start
)

// Actor is who caused a system event: an API key, or Herald itself.
type Actor struct {
	ID   string
	Type string
}

// SystemActor is Herald acting on its own.
var SystemActor = Actor{ID: "system", Type: AgentTypeSystem}

// KeyActor is the API key k.
func KeyActor(k *APIKey) Actor { return Actor{ID: k.ID, Type: AgentTypeAPIKey} }

type actorContextKey struct{}

// NewContextWithActor returns ctx carrying a: the store methods that write
// system events name it as their agent.
func NewContextWithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorContextKey{}, a)
}

// ActorFrom returns the actor ctx carries, SystemActor if none.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorContextKey{}).(Actor); ok && a.ID != "" {
		return a
	}
	return SystemActor
}

// NewEventID returns a new server-assigned event id: a UUIDv7, so ids sort
// by the time they were made.
func NewEventID() string { return uuid.Must(uuid.NewV7()).String() }

// SystemEvent describes a system event to write.
type SystemEvent struct {
	AccountID   string
	SubjectType string
	SubjectID   string
	Verb        string
	By          Actor
	// At is when it happened: occurredAt, and receivedAt unless Received
	// is set (a session that timed out while nobody looked ended before
	// Herald noticed).
	At       time.Time
	Received time.Time
	// Notes is a human line, such as a failure reason.
	Notes string
	// Fields are more members of data: "before" and "after" of a change,
	// "reason" of an ending. They must not hold secrets.
	Fields map[string]any
}

// Event returns the system event as an envelope ready to append: its data
// holds the members Lytics alert templates read (subject_type,
// subject_id, verb, aid, notes) and the Fields.
func (s SystemEvent) Event() (*Event, error) {
	data := make(map[string]any, len(s.Fields)+5)
	for k, v := range s.Fields {
		data[k] = v
	}
	data["subject_type"] = s.SubjectType
	data["subject_id"] = s.SubjectID
	data["verb"] = s.Verb
	data["aid"] = s.AccountID
	if s.Notes != "" {
		data["notes"] = s.Notes
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		return nil, fmt.Errorf("encode %s %s system event: %w", s.SubjectType, s.Verb, err)
	}
	at := s.At.UTC().Truncate(time.Microsecond)
	received := at
	if !s.Received.IsZero() {
		received = s.Received.UTC().Truncate(time.Microsecond)
	}
	by := s.By
	if by.ID == "" {
		by = SystemActor
	}
	e := &Event{
		ID:         NewEventID(),
		Category:   s.SubjectType,
		Type:       s.Verb,
		OccurredAt: at,
		ReceivedAt: received,
		AgentID:    by.ID,
		AgentType:  by.Type,
		PrimaryID:  s.SubjectID,
		Data:       bytes.TrimRight(buf.Bytes(), "\n"),
		Origin:     OriginSystem,
		AccountID:  s.AccountID,
	}
	h, err := contentHash(e)
	if err != nil {
		return nil, err
	}
	e.Hash = h
	return e, nil
}

// Audited is implemented by a thing whose record in the audit log must
// differ from what the API shows, such as a subscription whose header
// values may be credentials.
type Audited interface {
	// AuditView returns what a system event may record of it.
	AuditView() any
}

// auditView returns what a system event records of v.
func auditView(v any) any {
	if a, ok := v.(Audited); ok && a != nil {
		return a.AuditView()
	}
	return v
}

// ChangeEvent returns the system event for a change made through the API
// by the actor of ctx: verb created carries the new state as "after",
// deleted the old one as "before", and updated the members that differ,
// before and after. before and after are encoded as the API shows them,
// so they carry no secret the API would not show.
func ChangeEvent(ctx context.Context, accountID, subjectType, subjectID, verb string, at time.Time, before, after any) (*Event, error) {
	before, after = auditView(before), auditView(after)
	fields := map[string]any{}
	switch verb {
	case VerbCreated:
		fields["after"] = after
	case VerbDeleted:
		fields["before"] = before
	default:
		b, a, err := changedMembers(before, after)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", subjectType, subjectID, err)
		}
		fields["before"], fields["after"] = b, a
	}
	return SystemEvent{
		AccountID: accountID, SubjectType: subjectType, SubjectID: subjectID, Verb: verb,
		By: ActorFrom(ctx), At: at, Fields: fields,
	}.Event()
}

// changedMembers returns the top-level members of before and after (each
// encoded as a JSON object) whose values differ; a member one lacks is
// null there.
func changedMembers(before, after any) (map[string]json.RawMessage, map[string]json.RawMessage, error) {
	decode := func(v any) (map[string]json.RawMessage, error) {
		m := map[string]json.RawMessage{}
		if v == nil {
			return m, nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return m, json.Unmarshal(b, &m)
	}
	b, err := decode(before)
	if err != nil {
		return nil, nil, err
	}
	a, err := decode(after)
	if err != nil {
		return nil, nil, err
	}
	null := json.RawMessage("null")
	outB, outA := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for k, bv := range b {
		if av, ok := a[k]; !ok || !jsonEqual(av, bv) {
			outB[k] = bv
			if ok {
				outA[k] = av
			} else {
				outA[k] = null
			}
		}
	}
	for k, av := range a {
		if _, ok := b[k]; !ok {
			outB[k], outA[k] = null, av
		}
	}
	return outB, outA, nil
}

// jsonEqual reports whether two encodings are of the same value, whatever
// their white space and key order.
func jsonEqual(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	ca, errA := canonicalJSON(a)
	cb, errB := canonicalJSON(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}
