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

// lifecycleAnswer is a lifecycle as the API shows it.
type lifecycleAnswer struct {
	ID, Category, Type, Status, EntityID string
	Terminal, Redacted                   bool
	History                              []herald.LifecycleStep
	Data                                 map[string]any
	EventCount                           int
	FirstSeq, LastSeq                    int64
	Events                               []map[string]any
}

func (l lifecycleAnswer) statuses() []string {
	var out []string
	for _, s := range l.History {
		out = append(out, s.Status)
	}
	return out
}

func (l lifecycleAnswer) historyIDs() []string {
	var out []string
	for _, s := range l.History {
		out = append(out, s.EventID)
	}
	return out
}

func (l lifecycleAnswer) eventIDs() []string {
	var out []string
	for _, e := range l.Events {
		out = append(out, e["id"].(string))
	}
	return out
}

// TestIngestValidatedAgainstType sends an event that breaks its type in
// several ways at once: one 400 names every violation.
func TestIngestValidatedAgainstType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := `{"category":"transactions","type":"transaction","eventStatus":"shipped",
		"data":{"amount":12.5,"currency":"usd","merchant":{"mcc":"54"}}}`
	p := e.do("POST", "/v1/events", e.ingest, body).wantStatus(t, 400).problem(t)
	want := []string{"/data/amount", "/data/currency", "/data/external_transaction_id", "/data/merchant/mcc", "/eventStatus"}
	if got := sorted(pointers(p)); !slices.Equal(got, want) {
		t.Errorf("pointers %q, want %q", got, want)
	}
	for _, f := range p.Errors {
		if f.Detail == "" {
			t.Errorf("%s has no detail", f.Pointer)
		}
		if f.Pointer == "/eventStatus" && !strings.Contains(f.Detail, "pending, approved, denied, cancelled, failed") {
			t.Errorf("/eventStatus detail %q does not list the allowed statuses", f.Detail)
		}
	}
	if p.Type != problemTypeBase+"invalid" || p.Instance != "/v1/events" {
		t.Errorf("problem %+v", p)
	}

	// A login without its lifecycle id in data fails the schema; an event
	// of a type that defines no statuses may not have one.
	for _, c := range []struct{ body, pointer string }{
		{`{"category":"authentication","type":"login","eventStatus":"attempted","data":{}}`, "/data/external_login_id"},
		{`{"category":"authentication","type":"login","eventStatus":"attempted"}`, "/data/external_login_id"},
		{`{"category":"transfers","type":"singleTransferCreated","eventStatus":"attempted","data":{"amount":"1.00"}}`, "/eventStatus"},
		{`{"category":"transfers","type":"singleTransferCreated","data":{"amount":"1.00","scheduledOn":"tomorrow"}}`, "/data/scheduledOn"},
	} {
		p := e.do("POST", "/v1/events", e.ingest, c.body).wantStatus(t, 400).problem(t)
		if !slices.Equal(pointers(p), []string{c.pointer}) {
			t.Errorf("%s: pointers %q, want %q", c.body, pointers(p), c.pointer)
		}
	}
	if n := e.storedCount("acme"); n != 0 {
		t.Errorf("%d invalid events stored", n)
	}
}

// TestBatchValidatedAgainstType checks that an item that breaks its type
// fails alone, with pointers under its own, and that an atomic batch with
// such an item stores nothing.
func TestBatchValidatedAgainstType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := loginEvent("L-1", "cust-1", "attempted", testNow)
	bad := `{"category":"transactions","type":"transaction","eventStatus":"shipped","data":{"external_transaction_id":"T-1","amount":"1","currency":"eur"}}`
	var a batchAnswer
	e.do("POST", "/v1/events/batch", e.ingest, batch(good, bad, event(nil))).wantStatus(t, 200).json(t, &a)
	want := []string{"created", "failed:invalid /events/1/data/currency /events/1/eventStatus", "created"}
	if got := a.outcome(); !slices.Equal(got, want) {
		t.Errorf("batch\n got %q\nwant %q", got, want)
	}

	r := e.do("POST", "/v1/events/batch?atomic=true", e.ingest, batch(event(nil), bad)).wantStatus(t, 400)
	r.json(t, &a)
	want = []string{"failed:aborted", "failed:invalid /events/1/data/currency /events/1/eventStatus"}
	if got := a.outcome(); !slices.Equal(got, want) {
		t.Errorf("atomic batch\n got %q\nwant %q", got, want)
	}
	if got := pointers(a.Problem); !slices.Equal(got, []string{"/events/1/data/currency", "/events/1/eventStatus"}) {
		t.Errorf("atomic batch problem pointers %q", got)
	}
	if n := e.storedCount("acme"); n != 2 {
		t.Errorf("%d events stored, want the 2 valid ones of the first batch", n)
	}
}

// TestLoginLifecycle follows a login from attempted to succeeded: one
// lifecycle, its id taken from /data/external_login_id, and one profile
// update from the event whose status persists.
func TestLoginLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := sendLogin(t, e, "L-1", "cust-1", "attempted")

	// After attempted: a lifecycle that is open, and a profile that
	// counts the event but holds no attribute (attempted does not persist).
	var l lifecycleAnswer
	e.do("GET", "/v1/lifecycles/L-1", e.read, "").wantStatus(t, 200).json(t, &l)
	if l.Status != "attempted" || l.Terminal || l.Category != "authentication" || l.Type != "login" || l.EntityID != "cust-1" {
		t.Errorf("after attempted: %+v", l)
	}
	var pr profileAnswer
	e.do("GET", "/v1/profiles/cust-1", e.read, "").wantStatus(t, 200).json(t, &pr)
	if pr.EventCount != 1 || len(pr.Attributes) != 0 {
		t.Errorf("profile after attempted: %+v", pr)
	}

	e.advance(time.Minute)
	var res ingestResult
	e.do("POST", "/v1/events", e.ingest, loginEvent("L-1", "cust-1", "succeeded", testNow.Truncate(time.Second).Add(time.Minute))).wantStatus(t, 201).json(t, &res)
	ids = append(ids, res.ID)
	l = lifecycleAnswer{}
	e.do("GET", "/v1/lifecycles/L-1", e.read, "").wantStatus(t, 200).json(t, &l)
	if l.ID != "L-1" || l.Status != "succeeded" || !l.Terminal || l.EventCount != 2 ||
		!slices.Equal(l.statuses(), []string{"attempted", "succeeded"}) || !slices.Equal(l.historyIDs(), ids) ||
		!slices.Equal(l.eventIDs(), ids) || l.Data["external_login_id"] != "L-1" || l.Data["login_method"] != "otp" {
		t.Errorf("lifecycle %+v", l)
	}
	if !l.History[1].Terminal || l.History[0].Terminal {
		t.Errorf("history terminal flags %+v", l.History)
	}
	for _, ev := range l.Events {
		if ev["eventLifecycleId"] != "L-1" {
			t.Errorf("event %v lacks the lifecycle id taken from data", ev["id"])
		}
	}

	pr = profileAnswer{}
	e.do("GET", "/v1/profiles/cust-1", e.read, "").wantStatus(t, 200).json(t, &pr)
	if pr.ID != "cust-1" || pr.EventCount != 2 || !reflect.DeepEqual(pr.Counts, map[string]int64{"authentication/login": 2}) ||
		len(pr.Attributes) != 2 || pr.Attributes["login_method"].EventID != ids[1] || string(pr.Attributes["login_method"].Value) != `"otp"` ||
		pr.FirstSeq != 1 || pr.LastSeq != res.Seq {
		t.Errorf("profile %+v", pr)
	}
}

// TestLifecycleOutOfOrder sends the outcome of a login before its attempt:
// the late attempt takes its place in the history and does not replace
// the terminal status.
func TestLifecycleOutOfOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := testNow.Truncate(time.Second)
	var succeeded, attempted ingestResult
	e.do("POST", "/v1/events", e.ingest, loginEvent("L-2", "cust-2", "succeeded", at.Add(time.Minute))).wantStatus(t, 201).json(t, &succeeded)
	e.do("POST", "/v1/events", e.ingest, loginEvent("L-2", "cust-2", "attempted", at)).wantStatus(t, 201).json(t, &attempted)
	var l lifecycleAnswer
	e.do("GET", "/v1/lifecycles/L-2", e.read, "").wantStatus(t, 200).json(t, &l)
	if l.Status != "succeeded" || !l.Terminal ||
		!slices.Equal(l.historyIDs(), []string{attempted.ID, succeeded.ID}) ||
		!slices.Equal(l.eventIDs(), []string{attempted.ID, succeeded.ID}) {
		t.Errorf("lifecycle %+v", l)
	}
}

// TestTransitionRefused sends a status its lifecycle does not allow after
// the one before it: refused by the store, at /eventStatus, alone or as
// a batch item.
func TestTransitionRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := testNow.Truncate(time.Second)
	sendLogin(t, e, "L-3", "cust-3", "attempted", "succeeded")
	late := loginEvent("L-3", "cust-3", "failed", at.Add(time.Hour))

	p := e.do("POST", "/v1/events", e.ingest, late).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/eventStatus"}) || !strings.Contains(p.Detail, `"failed" may not follow "succeeded"`) {
		t.Errorf("refused transition: %+v", p)
	}

	var a batchAnswer
	e.do("POST", "/v1/events/batch", e.ingest, batch(event(nil), late)).wantStatus(t, 200).json(t, &a)
	if got := a.outcome(); !slices.Equal(got, []string{"created", "failed:invalid /events/1/eventStatus"}) {
		t.Errorf("batch %q", got)
	}
	e.do("POST", "/v1/events/batch?atomic=true", e.ingest, batch(event(nil), late)).wantStatus(t, 400).json(t, &a)
	if got := a.outcome(); !slices.Equal(got, []string{"failed:aborted", "failed:invalid /events/1/eventStatus"}) {
		t.Errorf("atomic batch %q", got)
	}

	var l lifecycleAnswer
	e.do("GET", "/v1/lifecycles/L-3", e.read, "").wantStatus(t, 200).json(t, &l)
	if l.Status != "succeeded" || l.EventCount != 2 {
		t.Errorf("lifecycle changed by refused events: %+v", l)
	}
	if n := e.storedCount("acme"); n != 3 {
		t.Errorf("%d events stored, want 3", n)
	}
}

// profileAnswer is a profile as the API shows it.
type profileAnswer struct {
	ID         string
	Attributes map[string]struct {
		Value   json.RawMessage
		EventID string
		Seq     int64
	}
	EventCount        int64
	Counts            map[string]int64
	FirstSeq, LastSeq int64
	FirstSeenAt       time.Time
	LastSeenAt        time.Time
}

// TestEraseProfile erases an entity: its profile goes, its events keep
// their envelopes without data, and its lifecycle loses its merged data.
func TestEraseProfile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := sendLogin(t, e, "L-4", "cust-4", "attempted", "succeeded")
	sendLogin(t, e, "L-5", "cust-5", "attempted", "succeeded")
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"coreCustomerId": "cust-4", "host": "web-1"})).wantStatus(t, 201)

	e.do("DELETE", "/v1/profiles/cust-4", e.read, "").wantStatus(t, 403)
	var res struct {
		ID             string
		RedactedEvents int64
	}
	e.do("DELETE", "/v1/profiles/cust-4", e.admin, "").wantStatus(t, 200).json(t, &res)
	if res.ID != "cust-4" || res.RedactedEvents != 3 {
		t.Errorf("erase answered %+v", res)
	}
	e.do("GET", "/v1/profiles/cust-4", e.read, "").wantStatus(t, 404)

	var ev map[string]any
	e.do("GET", "/v1/events/"+ids[1], e.read, "").wantStatus(t, 200).json(t, &ev)
	if ev["redacted"] != true || ev["data"] != nil || ev["eventStatus"] != "succeeded" || ev["coreCustomerId"] != "cust-4" {
		t.Errorf("redacted event %v", ev)
	}
	var l lifecycleAnswer
	e.do("GET", "/v1/lifecycles/L-4", e.read, "").wantStatus(t, 200).json(t, &l)
	if !l.Redacted || l.Data != nil || l.Status != "succeeded" || len(l.Events) != 2 {
		t.Errorf("redacted lifecycle %+v", l)
	}
	// The other entity is untouched.
	var pr profileAnswer
	e.do("GET", "/v1/profiles/cust-5", e.read, "").wantStatus(t, 200).json(t, &pr)
	if len(pr.Attributes) != 2 {
		t.Errorf("cust-5 lost attributes: %+v", pr)
	}
	e.do("DELETE", "/v1/profiles/cust-nope", e.admin, "").wantStatus(t, 404)
	// Another account cannot erase it.
	e.do("DELETE", "/v1/profiles/cust-5", e.other, "").wantStatus(t, 404)
}

// TestFindLifecyclesAndProfiles lists with filters and pages through the
// results with the cursor.
func TestFindLifecyclesAndProfiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sendLogin(t, e, "L-a", "cust-a", "attempted", "succeeded")
	sendLogin(t, e, "L-b", "cust-b", "attempted")
	sendLogin(t, e, "L-c", "cust-a", "attempted", "failed")
	e.do("POST", "/v1/events", e.ingest, `{"category":"transactions","type":"transaction","eventStatus":"pending","agentId":"cust-c","agentType":"Customer",
		"occurredAt":"2026-03-01T00:00:00Z","data":{"external_transaction_id":"T-1","amount":"9.99","currency":"EUR"}}`).wantStatus(t, 201)

	lifecycles := func(query string) ([]string, lifecyclePageAnswer) {
		t.Helper()
		var p lifecyclePageAnswer
		e.do("GET", "/v1/lifecycles?"+query, e.read, "").wantStatus(t, 200).json(t, &p)
		var ids []string
		for _, l := range p.Lifecycles {
			ids = append(ids, l.ID)
			if l.Events != nil {
				t.Errorf("listed lifecycle %s has events", l.ID)
			}
		}
		return ids, p
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{"L-a", "L-b", "L-c", "T-1"}},
		{"type=login", []string{"L-a", "L-b", "L-c"}},
		{"category=transactions", []string{"T-1"}},
		{"status=attempted", []string{"L-b"}},
		{"terminal=true", []string{"L-a", "L-c"}},
		{"terminal=false", []string{"L-b", "T-1"}},
		{"entity=cust-a", []string{"L-a", "L-c"}},
		{"entity=cust-c", []string{"T-1"}},
		{"occurredAfter=2026-02-01T00:00:00Z", []string{"T-1"}},
		{"occurredBefore=2026-02-01T00:00:00Z&type=login&terminal=false", []string{"L-b"}},
		{"afterSeq=2", []string{"L-b", "L-c", "T-1"}},
	} {
		if got, _ := lifecycles(c.query); !slices.Equal(got, c.want) {
			t.Errorf("lifecycles?%s: %v, want %v", c.query, got, c.want)
		}
	}
	got, p := lifecycles("limit=3")
	if !slices.Equal(got, []string{"L-a", "L-b", "L-c"}) || !p.HasMore {
		t.Errorf("page 1: %v hasMore=%v", got, p.HasMore)
	}
	got, p = lifecycles("limit=3&next=" + p.Next)
	if !slices.Equal(got, []string{"T-1"}) || p.HasMore {
		t.Errorf("page 2: %v hasMore=%v", got, p.HasMore)
	}
	next := p.Next
	got, p = lifecycles("next=" + next)
	if len(got) != 0 || p.Next != next {
		t.Errorf("empty page: %v next %q, want the same cursor %q", got, p.Next, next)
	}

	profiles := func(query string) ([]string, profilePageAnswer) {
		t.Helper()
		var p profilePageAnswer
		e.do("GET", "/v1/profiles?"+query, e.read, "").wantStatus(t, 200).json(t, &p)
		var ids []string
		for _, pr := range p.Profiles {
			ids = append(ids, pr.ID)
		}
		return ids, p
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{"cust-a", "cust-b", "cust-c"}},
		{"attribute=login_method&value=otp", []string{"cust-a"}},
		{"attribute=login_method&value=%22otp%22", []string{"cust-a"}},
		{"attribute=login_method&value=sms", nil},
		{"attribute=external_login_id&value=L-a", []string{"cust-a"}},
		{"seenAfter=2026-02-01T00:00:00Z", []string{"cust-c"}},
		{"seenBefore=2026-02-01T00:00:00Z", []string{"cust-a", "cust-b"}},
	} {
		if got, _ := profiles(c.query); !slices.Equal(got, c.want) {
			t.Errorf("profiles?%s: %v, want %v", c.query, got, c.want)
		}
	}
	got, pp := profiles("limit=2")
	if !slices.Equal(got, []string{"cust-a", "cust-b"}) || !pp.HasMore {
		t.Errorf("profiles page 1: %v hasMore=%v", got, pp.HasMore)
	}
	if got, pp = profiles("limit=2&next=" + pp.Next); !slices.Equal(got, []string{"cust-c"}) || pp.HasMore {
		t.Errorf("profiles page 2: %v hasMore=%v", got, pp.HasMore)
	}

	// The events of an entity, by either of its ids.
	var ev page
	e.do("GET", "/v1/events?entity=cust-c", e.read, "").wantStatus(t, 200).json(t, &ev)
	if len(ev.Events) != 1 || ev.Events[0]["agentId"] != "cust-c" {
		t.Errorf("events of cust-c: %v", ev.Events)
	}
	ev = page{}
	e.do("GET", "/v1/events?entity=cust-a", e.read, "").wantStatus(t, 200).json(t, &ev)
	if len(ev.Events) != 4 {
		t.Errorf("events of cust-a: %d, want 4", len(ev.Events))
	}

	// Another account sees none of them.
	if got, _ := lifecyclesOf(t, e, e.other); len(got) != 0 {
		t.Errorf("account other sees lifecycles %v", got)
	}
	e.do("GET", "/v1/lifecycles/L-a", e.other, "").wantStatus(t, 404)
	e.do("GET", "/v1/profiles/cust-a", e.other, "").wantStatus(t, 404)
}

type lifecyclePageAnswer struct {
	Lifecycles []lifecycleAnswer
	Next       string
	HasMore    bool
}

type profilePageAnswer struct {
	Profiles []profileAnswer
	Next     string
	HasMore  bool
}

func lifecyclesOf(t *testing.T, e *env, key string) ([]lifecycleAnswer, string) {
	t.Helper()
	var p lifecyclePageAnswer
	e.do("GET", "/v1/lifecycles", key, "").wantStatus(t, 200).json(t, &p)
	return p.Lifecycles, p.Next
}

func TestListParamsInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		path     string
		pointers []string
	}{
		{"/v1/lifecycles?terminal=yes", []string{"?terminal"}},
		{"/v1/lifecycles?terminal=", []string{"?terminal"}},
		{"/v1/lifecycles?status=", []string{"?status"}},
		{"/v1/lifecycles?entity=" + strings.Repeat("e", 513), []string{"?entity"}},
		{"/v1/lifecycles?occurredAfter=yesterday", []string{"?occurredAfter"}},
		{"/v1/lifecycles?occurredAfter=2026-01-02T00:00:00Z&occurredBefore=2026-01-01T00:00:00Z", []string{"?occurredBefore"}},
		{"/v1/lifecycles?limit=0", []string{"?limit"}},
		{"/v1/lifecycles?afterSeq=-1", []string{"?afterSeq"}},
		{"/v1/lifecycles?next=%21", []string{"?next"}},
		{"/v1/lifecycles?eventStatus=attempted", []string{"?eventStatus"}},
		{"/v1/lifecycles?type=a&type=b", []string{"?type"}},
		{"/v1/lifecycles?terminal=1&limit=0", []string{"?terminal", "?limit"}},
		{"/v1/profiles?value=otp", []string{"?attribute"}},
		{"/v1/profiles?attribute=email", []string{"?value"}},
		{"/v1/profiles?attribute=&value=x", []string{"?attribute"}},
		{"/v1/profiles?seenAfter=2026-01-02", []string{"?seenAfter"}},
		{"/v1/profiles?seenAfter=2026-01-02T00:00:00Z&seenBefore=2026-01-02T00:00:00Z", []string{"?seenBefore"}},
		{"/v1/profiles?seenBefore=2026-01-02T00:00:00+01:00", []string{"?seenBefore"}}, // + read as a space
		{"/v1/profiles?limit=1001", []string{"?limit"}},
		{"/v1/profiles?entity=cust-1", []string{"?entity"}},
		{"/v1/lifecycles/L-1?events=false", []string{"?events"}},
		{"/v1/profiles/cust-1?fields=all", []string{"?fields"}},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			p := e.do("GET", c.path, e.read, "").wantStatus(t, 400).problem(t)
			if got := pointers(p); !slices.Equal(got, c.pointers) {
				t.Errorf("pointers %q, want %q (%s)", got, c.pointers, p.Detail)
			}
		})
	}
}

// TestListFilters checks how each query becomes the store's filter.
func TestListFilters(t *testing.T) {
	t.Parallel()
	var gotL herald.LifecycleFilter
	var gotP herald.ProfileFilter
	var gotAccount string
	lifecycles := &mock.LifecycleService{FindLifecyclesFn: func(ctx context.Context, accountID string, f herald.LifecycleFilter) ([]*herald.Lifecycle, error) {
		gotL, gotAccount = f, accountID
		return nil, nil
	}}
	profiles := &mock.ProfileService{FindProfilesFn: func(ctx context.Context, accountID string, f herald.ProfileFilter) ([]*herald.Profile, error) {
		gotP, gotAccount = f, accountID
		return nil, nil
	}}
	e := newEnv(t, func(c *Config) { c.Lifecycles, c.Profiles = lifecycles, profiles })
	after := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	before := time.Date(2026, 1, 2, 0, 0, 0, 0, time.FixedZone("", 3600))
	yes, no := true, false
	for _, c := range []struct {
		query string
		want  herald.LifecycleFilter
	}{
		{"", herald.LifecycleFilter{Limit: 101}},
		{"category=authentication&type=login&status=attempted&entity=cust-1&terminal=true&limit=5",
			herald.LifecycleFilter{Category: "authentication", Type: "login", Status: "attempted", EntityID: "cust-1", Terminal: &yes, Limit: 6}},
		{"terminal=false", herald.LifecycleFilter{Terminal: &no, Limit: 101}},
		{"occurredAfter=2026-01-01T00:00:00Z&occurredBefore=" + url.QueryEscape("2026-01-02T00:00:00+01:00"),
			herald.LifecycleFilter{OccurredAfter: after, OccurredBefore: before, Limit: 101}},
		{"afterSeq=42&next=" + encodeCursor(7), herald.LifecycleFilter{AfterSeq: 7, Limit: 101}},
	} {
		e.do("GET", "/v1/lifecycles?"+c.query, e.read, "").wantStatus(t, 200)
		if !reflect.DeepEqual(gotL, c.want) || gotAccount != "acme" {
			t.Errorf("lifecycles?%s: filter for %s\n got %+v\nwant %+v", c.query, gotAccount, gotL, c.want)
		}
	}
	for _, c := range []struct {
		query string
		want  herald.ProfileFilter
	}{
		{"", herald.ProfileFilter{Limit: 101}},
		{"seenAfter=2026-01-01T00:00:00Z&seenBefore=" + url.QueryEscape("2026-01-02T00:00:00+01:00") + "&afterSeq=3&limit=1",
			herald.ProfileFilter{SeenAfter: after, SeenBefore: before, AfterSeq: 3, Limit: 2}},
		{"attribute=email&value=a%40example.com", herald.ProfileFilter{Attribute: "email", Value: json.RawMessage(`"a@example.com"`), Limit: 101}},
		{"attribute=note&value=" + url.QueryEscape("<b>&"), herald.ProfileFilter{Attribute: "note", Value: json.RawMessage(`"<b>&"`), Limit: 101}},
		{"attribute=age&value=42", herald.ProfileFilter{Attribute: "age", Value: json.RawMessage(`42`), Limit: 101}},
		{"attribute=zip&value=%2242%22", herald.ProfileFilter{Attribute: "zip", Value: json.RawMessage(`"42"`), Limit: 101}},
		{"attribute=vip&value=true", herald.ProfileFilter{Attribute: "vip", Value: json.RawMessage(`true`), Limit: 101}},
		{"attribute=address&value=" + url.QueryEscape(`{ "city" : "Oslo" }`), herald.ProfileFilter{Attribute: "address", Value: json.RawMessage(`{"city":"Oslo"}`), Limit: 101}},
	} {
		e.do("GET", "/v1/profiles?"+c.query, e.read, "").wantStatus(t, 200)
		if !reflect.DeepEqual(gotP, c.want) || gotAccount != "acme" {
			t.Errorf("profiles?%s: filter for %s\n got %+v (value %s)\nwant %+v (value %s)", c.query, gotAccount, gotP, gotP.Value, c.want, c.want.Value)
		}
	}
}

// TestScopesOfTheCatalogRoutes checks who may read and who may change.
func TestScopesOfTheCatalogRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sendLogin(t, e, "L-1", "cust-1", "attempted", "succeeded")
	cases := []struct {
		method, path, body string
		key                func(*env) string
		want               int
	}{
		{"PUT", "/v1/event-types/payments/cardVoided", `{}`, readKey, 403},
		{"PUT", "/v1/event-types/payments/cardVoided", `{}`, ingestKey, 403},
		{"POST", "/v1/event-types", `{"category":"payments","type":"cardVoided"}`, readKey, 403},
		{"DELETE", "/v1/event-types/authentication/login", "", readKey, 403},
		{"PUT", "/v1/settings", `{"unknownTypes":"reject"}`, readKey, 403},
		{"DELETE", "/v1/profiles/cust-1", "", readKey, 403},
		{"GET", "/v1/event-types", "", ingestKey, 403},
		{"GET", "/v1/lifecycles/L-1", "", ingestKey, 403},
		{"GET", "/v1/profiles/cust-1", "", ingestKey, 403},
		{"GET", "/v1/event-types", "", readKey, 200},
		{"GET", "/v1/settings", "", readKey, 200},
		{"GET", "/v1/lifecycles/L-1", "", readKey, 200},
		{"GET", "/v1/profiles/cust-1", "", readKey, 200},
		{"GET", "/v1/lifecycles/L-1", "", adminKey, 200},
		{"PUT", "/v1/event-types/payments/cardVoided", `{}`, adminKey, 201},
	}
	for _, c := range cases {
		e.do(c.method, c.path, c.key(e), c.body).wantStatus(t, c.want)
	}
}

// TestLifecycleIDWithASlash reads a lifecycle and a profile whose ids hold
// characters that must be escaped in a path.
func TestLifecycleIDWithASlash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sendLogin(t, e, "2026/01/L 1", "cust/1", "attempted")
	var l lifecycleAnswer
	e.do("GET", "/v1/lifecycles/"+url.PathEscape("2026/01/L 1"), e.read, "").wantStatus(t, 200).json(t, &l)
	if l.ID != "2026/01/L 1" || len(l.Events) != 1 {
		t.Errorf("lifecycle %+v", l)
	}
	var pr profileAnswer
	e.do("GET", "/v1/profiles/"+url.PathEscape("cust/1"), e.read, "").wantStatus(t, 200).json(t, &pr)
	if pr.ID != "cust/1" {
		t.Errorf("profile %+v", pr)
	}
}
