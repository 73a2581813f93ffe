package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/heraldhq/herald"
)

// outgoing is an event as a client sends it: the envelope without the
// members only the server sets, which it refuses.
type outgoing struct {
	ID               string          `json:"id,omitempty"`
	Category         string          `json:"category,omitempty"`
	Type             string          `json:"type,omitempty"`
	OccurredAt       time.Time       `json:"occurredAt,omitzero"`
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
}

func outgoingOf(e *herald.Event) outgoing {
	return outgoing{
		ID: e.ID, Category: e.Category, Type: e.Type, OccurredAt: e.OccurredAt,
		AgentID: e.AgentID, AgentType: e.AgentType, CoreCustomerID: e.CoreCustomerID,
		CustomerSerialID: e.CustomerSerialID, Host: e.Host, PrimaryID: e.PrimaryID,
		SecondaryID: e.SecondaryID, SessionID: e.SessionID, EventStatus: e.EventStatus,
		EventLifecycleID: e.EventLifecycleID, Data: e.Data,
	}
}

// ensureID gives e an id when it has none, before anything is sent: the
// id is what makes a retried request a duplicate rather than a second
// event.
func ensureID(e *herald.Event) {
	if e.ID == "" {
		e.ID = herald.NewEventID()
	}
}

// SendResult is the answer to an event sent.
type SendResult struct {
	ID         string    `json:"id"`
	Seq        int64     `json:"seq"`
	ReceivedAt time.Time `json:"receivedAt"`
	// Duplicate is true when the event was stored before (by an earlier
	// attempt, say); Seq and ReceivedAt are then the original's.
	Duplicate bool `json:"duplicate,omitempty"`
	// SessionID is the event's session: the one Herald gave a login sent
	// without one, for the events that follow.
	SessionID string   `json:"sessionId,omitempty"`
	Flags     []string `json:"flags,omitempty"`
}

// Send stores one event (POST /v1/events). An event without an id is
// given one first, in e.ID.
func (c *Client) Send(ctx context.Context, e *herald.Event) (*SendResult, error) {
	if e == nil {
		return nil, errors.New("client: Send: nil event")
	}
	ensureID(e)
	var out SendResult
	err := c.call(ctx, &request{method: http.MethodPost, path: "/v1/events"}, outgoingOf(e), &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Statuses of a BatchItem.
const (
	ItemCreated   = "created"
	ItemDuplicate = "duplicate"
	ItemFailed    = "failed"
)

// BatchItem is what became of one event of a batch.
type BatchItem struct {
	// Index is the event's place in the slice given to SendBatch.
	Index int `json:"index"`
	// Status is ItemCreated, ItemDuplicate or ItemFailed.
	Status     string    `json:"status"`
	ID         string    `json:"id,omitempty"`
	Seq        int64     `json:"seq,omitempty"`
	ReceivedAt time.Time `json:"receivedAt,omitzero"`
	SessionID  string    `json:"sessionId,omitempty"`
	Flags      []string  `json:"flags,omitempty"`
	// Error says why a failed event was not stored; its pointers name the
	// field within the request (/events/<i>/…, i the place in that
	// request).
	Error *Error `json:"error,omitempty"`
}

// BatchResult is the answer to SendBatch: one item per event, in order.
type BatchResult struct {
	Items      []BatchItem `json:"items"`
	Created    int         `json:"created"`
	Duplicates int         `json:"duplicates"`
	Failed     int         `json:"failed"`
}

// batchAnswer is the JSON of POST /v1/events/batch's answer.
type batchAnswer struct {
	Results []struct {
		Index      int        `json:"index"`
		Status     string     `json:"status"`
		ID         string     `json:"id"`
		Seq        int64      `json:"seq"`
		ReceivedAt *time.Time `json:"receivedAt"`
		SessionID  string     `json:"sessionId"`
		Flags      []string   `json:"flags"`
		Problem    *problem   `json:"problem"`
	} `json:"results"`
}

// SendBatch stores events (POST /v1/events/batch), each on its own: one
// may fail while the others are stored. Events without an id are given
// one first. More events than a request may carry (herald.MaxBatchEvents,
// or herald.MaxBatchBytes of JSON) are sent in several requests, one
// after the other; if one of them fails as a whole, SendBatch returns the
// items of those before it with the error.
func (c *Client) SendBatch(ctx context.Context, events []*herald.Event) (*BatchResult, error) {
	res := &BatchResult{Items: make([]BatchItem, 0, len(events))}
	bodies := make([]json.RawMessage, len(events))
	for i, e := range events {
		if e == nil {
			return nil, fmt.Errorf("client: SendBatch: event %d is nil", i)
		}
		ensureID(e)
		b, err := encodeJSON(outgoingOf(e))
		if err != nil {
			return nil, fmt.Errorf("client: SendBatch: encode event %d: %w", i, err)
		}
		bodies[i] = b
	}
	for start := 0; start < len(bodies); {
		end, size := start, len(`{"events":[]}`)
		for end < len(bodies) && end-start < herald.MaxBatchEvents {
			n := len(bodies[end]) + 1
			if end > start && size+n > herald.MaxBatchBytes {
				break
			}
			size += n
			end++
		}
		if err := c.sendChunk(ctx, events[start:end], bodies[start:end], start, res); err != nil {
			return res, err
		}
		start = end
	}
	return res, nil
}

// sendChunk sends bodies, the JSON of events (those from offset on), as
// one request and adds their items to res.
func (c *Client) sendChunk(ctx context.Context, events []*herald.Event, bodies []json.RawMessage, offset int, res *BatchResult) error {
	var ans batchAnswer
	req := &request{method: http.MethodPost, path: "/v1/events/batch"}
	if err := c.call(ctx, req, struct {
		Events []json.RawMessage `json:"events"`
	}{bodies}, &ans); err != nil {
		return err
	}
	if len(ans.Results) != len(bodies) {
		return fmt.Errorf("POST /v1/events/batch: %d results for %d events", len(ans.Results), len(bodies))
	}
	for i, r := range ans.Results {
		if r.Index != i {
			return fmt.Errorf("POST /v1/events/batch: result %d is of event %d", i, r.Index)
		}
		item := BatchItem{Index: offset + i, Status: r.Status, ID: r.ID, Seq: r.Seq, SessionID: r.SessionID, Flags: r.Flags}
		if item.ID == "" {
			// The server names no id for an event it could not read; the
			// client knows the one it sent.
			item.ID = events[i].ID
		}
		if r.ReceivedAt != nil {
			item.ReceivedAt = *r.ReceivedAt
		}
		if r.Problem != nil {
			item.Error = r.Problem.toError(0)
		}
		switch item.Status {
		case ItemCreated:
			res.Created++
		case ItemDuplicate:
			res.Duplicates++
		default:
			res.Failed++
		}
		res.Items = append(res.Items, item)
	}
	return nil
}

// EventQuery selects events, as the query parameters of GET /v1/events
// do. Zero fields do not filter.
type EventQuery struct {
	Category         string
	Type             string
	EventStatus      string
	EventLifecycleID string
	CoreCustomerID   string
	AgentID          string
	SessionID        string
	PrimaryID        string
	// Origin is herald.OriginAPI or herald.OriginSystem; empty for both.
	Origin string
	// Entity selects the events of one entity (coreCustomerId, or agentId
	// of a customer agent).
	Entity string
	// OccurredAfter is inclusive, OccurredBefore exclusive.
	OccurredAfter  time.Time
	OccurredBefore time.Time
	// AfterSeq starts after this seq.
	AfterSeq int64
	// Limit is the page size (1 to 1,000; 0: the server's default, 100).
	// Events pages through every matching event whatever it is.
	Limit int
}

// values returns the query parameters of q, without paging.
func (q *EventQuery) values() url.Values {
	v := url.Values{}
	for _, f := range []struct{ name, value string }{
		{"category", q.Category}, {"type", q.Type}, {"eventStatus", q.EventStatus},
		{"eventLifecycleId", q.EventLifecycleID}, {"coreCustomerId", q.CoreCustomerID},
		{"agentId", q.AgentID}, {"sessionId", q.SessionID}, {"primaryId", q.PrimaryID},
		{"origin", q.Origin}, {"entity", q.Entity},
	} {
		if f.value != "" {
			v.Set(f.name, f.value)
		}
	}
	if !q.OccurredAfter.IsZero() {
		v.Set("occurredAfter", q.OccurredAfter.Format(time.RFC3339Nano))
	}
	if !q.OccurredBefore.IsZero() {
		v.Set("occurredBefore", q.OccurredBefore.Format(time.RFC3339Nano))
	}
	return v
}

// EventPage is one page of events.
type EventPage struct {
	Events []*herald.Event
	// Next is the position after the page's last event: pass it to
	// EventPage for the next page, or later, to poll for new events.
	Next    string
	HasMore bool
}

// pageAnswer is the JSON of a page of events.
type pageAnswer struct {
	Events  []json.RawMessage `json:"events"`
	Next    string            `json:"next"`
	HasMore bool              `json:"hasMore"`
}

// EventPage answers one page of GET /v1/events: from the start of q
// when next is empty, else from next, a cursor an earlier page returned.
// Each event's Body is its JSON as stored.
func (c *Client) EventPage(ctx context.Context, q EventQuery, next string) (*EventPage, error) {
	v := q.values()
	if q.AfterSeq > 0 {
		v.Set("afterSeq", strconv.FormatInt(q.AfterSeq, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return c.page(ctx, "/v1/events", v, next)
}

func (c *Client) page(ctx context.Context, path string, v url.Values, next string) (*EventPage, error) {
	if next != "" {
		v.Set("next", next) // the server lets it win over afterSeq
	}
	var ans pageAnswer
	if err := c.call(ctx, &request{method: http.MethodGet, path: path, query: v}, nil, &ans); err != nil {
		return nil, err
	}
	p := &EventPage{Events: make([]*herald.Event, 0, len(ans.Events)), Next: ans.Next, HasMore: ans.HasMore}
	for _, raw := range ans.Events {
		e, err := decodeEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		p.Events = append(p.Events, e)
	}
	return p, nil
}

// decodeEvent decodes a stored event, keeping its JSON in Body.
func decodeEvent(raw []byte) (*herald.Event, error) {
	e := &herald.Event{}
	if err := json.Unmarshal(raw, e); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	e.Body = append(json.RawMessage(nil), raw...)
	return e, nil
}

// Events returns every event q selects, in seq order, fetching page after
// page of GET /v1/events as the loop asks for more. An error ends the
// sequence: it is yielded with a nil event.
func (c *Client) Events(ctx context.Context, q EventQuery) iter.Seq2[*herald.Event, error] {
	return func(yield func(*herald.Event, error) bool) {
		next := ""
		for {
			p, err := c.EventPage(ctx, q, next)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, e := range p.Events {
				if !yield(e, nil) {
					return
				}
			}
			if !p.HasMore || len(p.Events) == 0 {
				return
			}
			next = p.Next
		}
	}
}

// Event returns one event, exactly as stored (its JSON in Body).
func (c *Client) Event(ctx context.Context, id string) (*herald.Event, error) {
	var raw json.RawMessage
	if err := c.call(ctx, &request{method: http.MethodGet, path: pathOf("events", id)}, nil, &raw); err != nil {
		return nil, err
	}
	e, err := decodeEvent(raw)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/events/%s: %w", id, err)
	}
	return e, nil
}

// Audit returns the account's system events that q selects (the query
// parameters of GET /v1/audit: system_event_type, subjectType, verb, …),
// in seq order, page after page. An error ends the sequence.
func (c *Client) Audit(ctx context.Context, q url.Values) iter.Seq2[*herald.Event, error] {
	return func(yield func(*herald.Event, error) bool) {
		next := ""
		for {
			v := url.Values{}
			for k, vs := range q {
				v[k] = append([]string(nil), vs...)
			}
			p, err := c.page(ctx, "/v1/audit", v, next)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, e := range p.Events {
				if !yield(e, nil) {
					return
				}
			}
			if !p.HasMore || len(p.Events) == 0 {
				return
			}
			next = p.Next
		}
	}
}

// VerifyAudit walks the account's audit chain (GET /v1/audit/verify).
func (c *Client) VerifyAudit(ctx context.Context) (*herald.AuditReport, error) {
	var r herald.AuditReport
	if err := c.call(ctx, &request{method: http.MethodGet, path: "/v1/audit/verify"}, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
