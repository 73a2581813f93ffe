package httpapi

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/mock"
)

// page is the answer of GET /v1/events.
type page struct {
	Events  []map[string]any
	Next    string
	HasMore bool
}

func (p page) ids() []string {
	var out []string
	for _, e := range p.Events {
		out = append(out, e["id"].(string))
	}
	return out
}

func TestFindEventsParamsInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		query    string
		pointers []string
	}{
		{"limit=0", []string{"?limit"}},
		{"limit=1001", []string{"?limit"}},
		{"limit=ten", []string{"?limit"}},
		{"limit=", []string{"?limit"}},
		{"afterSeq=-1", []string{"?afterSeq"}},
		{"afterSeq=1.5", []string{"?afterSeq"}},
		{"origin=web", []string{"?origin"}},
		{"occurredAfter=yesterday", []string{"?occurredAfter"}},
		{"occurredAfter=2026-01-02", []string{"?occurredAfter"}},
		{"occurredBefore=2026-01-02T00:00:00+01:00", []string{"?occurredBefore"}}, // + read as a space
		{"occurredAfter=2026-01-02T00:00:00Z&occurredBefore=2026-01-02T00:00:00Z", []string{"?occurredBefore"}},
		{"next=%21%21", []string{"?next"}},
		{"next=eA", []string{"?next"}},  // base64url of "x"
		{"next=LTE", []string{"?next"}}, // base64url of "-1"
		{"category=", []string{"?category"}},
		{"entity=", []string{"?entity"}},
		{"type=" + strings.Repeat("t", 513), []string{"?type"}},
		{"sort=seq", []string{"?sort"}},
		{"type=a&type=b", []string{"?type"}},
		{"limit=0&origin=x", []string{"?origin", "?limit"}},  // in the documented order
		{"limit=0&origin=x&colour=red", []string{"?colour"}}, // unknown parameters first
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			p := e.do("GET", "/v1/events?"+c.query, e.read, "").wantStatus(t, 400).problem(t)
			if got := pointers(p); !slices.Equal(got, c.pointers) {
				t.Errorf("pointers %q, want %q (%s)", got, c.pointers, p.Detail)
			}
		})
	}
	p := e.do("GET", "/v1/events?occurredBefore=2026-01-02T00:00:00+01:00", e.read, "").problem(t)
	if !strings.Contains(p.Errors[0].Detail, "%2B") {
		t.Errorf("no hint about + in %q", p.Errors[0].Detail)
	}
}

// TestFindEventsFilter checks how the query becomes the store's filter.
func TestFindEventsFilter(t *testing.T) {
	t.Parallel()
	var got herald.EventFilter
	var gotAccount string
	events := &mock.EventService{FindEventsFn: func(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
		got, gotAccount = f, accountID
		return nil, nil
	}}
	e := newEnv(t, func(c *Config) { c.Events = events })
	after := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	before := time.Date(2026, 1, 2, 0, 0, 0, 0, time.FixedZone("", 3600))
	cases := []struct {
		query string
		want  herald.EventFilter
	}{
		{"", herald.EventFilter{Limit: 101}},
		{"limit=1", herald.EventFilter{Limit: 2}},
		{"limit=1000", herald.EventFilter{Limit: 1001}},
		{"category=transfers&type=singleTransferCreated&eventStatus=attempted&eventLifecycleId=L1&coreCustomerId=C1&entity=E1&agentId=A1&sessionId=S1&primaryId=P1&origin=system",
			herald.EventFilter{Category: "transfers", Type: "singleTransferCreated", EventStatus: "attempted", EventLifecycleID: "L1",
				CoreCustomerID: "C1", EntityID: "E1", AgentID: "A1", SessionID: "S1", PrimaryID: "P1", Origin: "system", Limit: 101}},
		{"occurredAfter=2026-01-01T00:00:00Z&occurredBefore=" + url.QueryEscape("2026-01-02T00:00:00+01:00"),
			herald.EventFilter{OccurredAfter: after, OccurredBefore: before, Limit: 101}},
		{"afterSeq=42", herald.EventFilter{AfterSeq: 42, Limit: 101}},
		{"afterSeq=42&next=" + encodeCursor(7), herald.EventFilter{AfterSeq: 7, Limit: 101}},
		{"next=" + encodeCursor(0), herald.EventFilter{Limit: 101}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			e.do("GET", "/v1/events?"+c.query, e.read, "").wantStatus(t, 200)
			c.want.BodiesOnly = true // the list writes stored bodies as they are
			if !reflect.DeepEqual(got, c.want) || gotAccount != "acme" {
				t.Errorf("filter for %s\n got %+v\nwant %+v", gotAccount, got, c.want)
			}
		})
	}
}

// TestFindEventsPaging follows the cursor through pages while events keep
// arriving: every event is seen once, in order, and an empty page still
// gives a cursor to poll with.
func TestFindEventsPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Not logins: they start no session, so no system event takes a seq
	// between them.
	send := func(n int) {
		for range n {
			e.do("POST", "/v1/events", e.ingest, event(map[string]any{"type": "userLoggedOut"})).wantStatus(t, 201)
		}
	}
	get := func(query string) page {
		var p page
		e.do("GET", "/v1/events?"+query, e.read, "").wantStatus(t, 200).json(t, &p)
		return p
	}

	send(5)
	p := get("limit=2")
	if !slices.Equal(p.ids(), []string{"evt-0001", "evt-0002"}) || !p.HasMore {
		t.Fatalf("page 1: %v hasMore=%v", p.ids(), p.HasMore)
	}
	p = get("limit=2&next=" + p.Next)
	if !slices.Equal(p.ids(), []string{"evt-0003", "evt-0004"}) || !p.HasMore {
		t.Fatalf("page 2: %v hasMore=%v", p.ids(), p.HasMore)
	}
	send(1) // arrives while paging
	p = get("limit=2&next=" + p.Next)
	if !slices.Equal(p.ids(), []string{"evt-0005", "evt-0006"}) || p.HasMore {
		t.Fatalf("page 3: %v hasMore=%v", p.ids(), p.HasMore)
	}
	last := p.Next
	p = get("limit=2&next=" + last)
	if len(p.Events) != 0 || p.HasMore || p.Next != last {
		t.Fatalf("empty page: %v hasMore=%v next=%q, want next %q", p.ids(), p.HasMore, p.Next, last)
	}
	send(1)
	p = get("limit=2&next=" + p.Next)
	if !slices.Equal(p.ids(), []string{"evt-0007"}) {
		t.Fatalf("poll: %v", p.ids())
	}

	// An empty account answers a cursor at its start.
	var empty page
	e.do("GET", "/v1/events", e.other, "").wantStatus(t, 200).json(t, &empty)
	if empty.Events == nil || len(empty.Events) != 0 || empty.Next != encodeCursor(0) {
		t.Errorf("empty account page %+v", empty)
	}
	// Starting from afterSeq, the cursor is that position.
	p = get("afterSeq=100")
	if p.Next != encodeCursor(100) {
		t.Errorf("next %q, want the cursor of 100", p.Next)
	}
	p = get("afterSeq=5&category=authentication")
	if !slices.Equal(p.ids(), []string{"evt-0006", "evt-0007"}) {
		t.Errorf("afterSeq=5: %v", p.ids())
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, seq := range []int64{0, 1, 99, 1 << 40} {
		c := encodeCursor(seq)
		got, ok := decodeCursor(c)
		if !ok || got != seq {
			t.Errorf("cursor %q of %d decodes to %d, %v", c, seq, got, ok)
		}
	}
	for _, c := range []string{"", "MA==", "+A", "MDE", "eA"} { // padded, non-url alphabet, "01", "x"
		if _, ok := decodeCursor(c); ok {
			t.Errorf("cursor %q accepted", c)
		}
	}
}

// TestEventsAsStored checks that bodies are written as the store holds
// them, byte for byte, never re-encoded.
func TestEventsAsStored(t *testing.T) {
	t.Parallel()
	bodies := []string{
		`{"id":"a","seq":1,"category":"c","type":"t","occurredAt":"2026-01-02T15:04:05Z","receivedAt":"2026-01-02T15:04:05.1Z","data":{"z":1,"a":"<&>","n":1.50,"u":"é"},"origin":"api"}`,
		`{"id":"b","seq":2,"category":"c","type":"t","occurredAt":"2026-01-02T15:04:05Z","receivedAt":"2026-01-02T15:04:05Z","origin":"system"}`,
	}
	var stored []*herald.Event
	for i, b := range bodies {
		var ev herald.Event
		if err := json.Unmarshal([]byte(b), &ev); err != nil {
			t.Fatal(err)
		}
		ev.Seq, ev.Body = int64(i+1), json.RawMessage(b)
		stored = append(stored, &ev)
	}
	events := &mock.EventService{
		FindEventsFn: func(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
			return stored, nil
		},
		FindEventByIDFn: func(ctx context.Context, accountID, id string) (*herald.Event, error) {
			return stored[0], nil
		},
	}
	e := newEnv(t, func(c *Config) { c.Events = events })
	r := e.do("GET", "/v1/events", e.read, "").wantStatus(t, 200)
	want := `{"events":[` + bodies[0] + `,` + bodies[1] + `],"next":"` + encodeCursor(2) + `","hasMore":false}` + "\n"
	if string(r.body) != want {
		t.Errorf("page\n got %s\nwant %s", r.body, want)
	}
	r = e.do("GET", "/v1/events/a", e.read, "").wantStatus(t, 200)
	if string(r.body) != bodies[0] || r.mediaType() != "application/json" {
		t.Errorf("event %s (%s)\nwant %s", r.body, r.mediaType(), bodies[0])
	}
}

func TestGetEventNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"id": "mine"})).wantStatus(t, 201)
	for _, c := range []struct{ key, path string }{
		{e.read, "/v1/events/nope"},
		{e.other, "/v1/events/mine"},
		{e.read, "/v1/events/" + url.PathEscape("bad id")},
		{e.read, "/v1/events/" + strings.Repeat("i", 200)},
	} {
		p := e.do("GET", c.path, c.key, "").wantStatus(t, 404).problem(t)
		if p.Type != problemTypeBase+"not-found" {
			t.Errorf("%s: type %q", c.path, p.Type)
		}
	}
}
