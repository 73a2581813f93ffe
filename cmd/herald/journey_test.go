package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"
)

// These tests walk issue 5 against the real binary: sessions and visits,
// the journey system events, the sweeper that ends them when no request
// comes, and the audit log with its chain and its Lytics filter keys.

// apiEvent is an event as GET /v1/events and GET /v1/audit show it.
type apiEvent struct {
	ID         string          `json:"id"`
	Seq        int64           `json:"seq"`
	Category   string          `json:"category"`
	Type       string          `json:"type"`
	PrimaryID  string          `json:"primaryId"`
	AgentID    string          `json:"agentId"`
	AgentType  string          `json:"agentType"`
	Origin     string          `json:"origin"`
	SessionID  string          `json:"sessionId"`
	Flags      []string        `json:"flags"`
	OccurredAt time.Time       `json:"occurredAt"`
	ReceivedAt time.Time       `json:"receivedAt"`
	Data       json.RawMessage `json:"data"`
	Hash       string          `json:"hash"`
}

// summary is "category type primaryId", to compare lists of system events.
func (e apiEvent) summary() string { return e.Category + " " + e.Type + " " + e.PrimaryID }

// dataField returns the member name of the event's data, as a string.
func (e apiEvent) dataField(t *testing.T, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatalf("event %s data %s: %v", e.ID, e.Data, err)
	}
	return fmt.Sprint(m[name])
}

// session is a session as GET /v1/sessions/{id} shows it.
type session struct {
	ID             string     `json:"id"`
	EntityID       string     `json:"entityId"`
	StartedAt      time.Time  `json:"startedAt"`
	LastActivityAt time.Time  `json:"lastActivityAt"`
	EndedAt        *time.Time `json:"endedAt"`
	EndReason      string     `json:"endReason"`
	EventCount     int64      `json:"eventCount"`
	StartEventID   string     `json:"startEventId"`
}

// ingested is the answer of POST /v1/events.
type ingested struct {
	ID        string   `json:"id"`
	Seq       int64    `json:"seq"`
	SessionID string   `json:"sessionId"`
	Flags     []string `json:"flags"`
}

func (s *server) ingest(body string) ingested {
	s.t.Helper()
	var r ingested
	if err := json.Unmarshal(s.mustDo("POST", "/v1/events", []byte(body), 201), &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// eventList answers one page (up to 1,000) of GET path, which lists events.
func (s *server) eventList(path string) []apiEvent {
	s.t.Helper()
	var page struct {
		Events  []apiEvent `json:"events"`
		HasMore bool       `json:"hasMore"`
	}
	if err := json.Unmarshal(s.mustDo("GET", path, nil, 200), &page); err != nil {
		s.t.Fatal(err)
	}
	if page.HasMore {
		s.t.Fatalf("GET %s has more than one page", path)
	}
	return page.Events
}

// audit answers GET /v1/audit with the query q.
func (s *server) audit(q url.Values) []apiEvent {
	s.t.Helper()
	q.Set("limit", "1000")
	return s.eventList("/v1/audit?" + q.Encode())
}

func summaries(events []apiEvent) []string {
	out := []string{}
	for _, e := range events {
		out = append(out, e.summary())
	}
	return out
}

func (s *server) session(id string) session {
	s.t.Helper()
	var x session
	if err := json.Unmarshal(s.mustDo("GET", "/v1/sessions/"+id, nil, 200), &x); err != nil {
		s.t.Fatal(err)
	}
	return x
}

// bootstrapKeyID returns the id of the server's bootstrap key, the one the
// tests send.
func (s *server) bootstrapKeyID() string {
	s.t.Helper()
	var list struct {
		Keys []struct {
			ID        string `json:"id"`
			Bootstrap bool   `json:"bootstrap"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(s.mustDo("GET", "/v1/keys", nil, 200), &list); err != nil {
		s.t.Fatal(err)
	}
	for _, k := range list.Keys {
		if k.Bootstrap {
			return k.ID
		}
	}
	s.t.Fatalf("no bootstrap key in %+v", list.Keys)
	return ""
}

// stop ends the server with SIGTERM and waits for it to exit.
func (s *server) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.t.Fatalf("herald serve did not exit within 30 s of SIGTERM: %s", s.logs.String())
	}
}

// poll calls check every 25 ms until it reports true, failing the test
// with what after the deadline.
func poll(t *testing.T, timeout time.Duration, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// loginEventsLogout is the story README tells: a login without a session
// id gets one, the events that carry it belong to the session, a logout
// ends it, and each step is a system event in the audit log.
func loginEventsLogout(t *testing.T, args ...string) {
	s := startServer(t, t.TempDir(), randomKey(), args...)
	keyID := s.bootstrapKeyID()

	login := s.ingest(`{"id":"login-1","category":"authentication","type":"userLoggedIn","coreCustomerId":"cust-1"}`)
	if login.SessionID == "" {
		t.Fatalf("the login's answer has no sessionId: %+v", login)
	}
	sid := login.SessionID
	for i := range 2 {
		r := s.ingest(fmt.Sprintf(`{"id":"act-%d","category":"transfers","type":"singleTransferCreated","coreCustomerId":"cust-1",
			"sessionId":%q,"data":{"amount":"%d.00"}}`, i, sid, i+1))
		if r.SessionID != sid || len(r.Flags) != 0 {
			t.Errorf("event act-%d in the session answered %+v", i, r)
		}
	}
	if r := s.ingest(fmt.Sprintf(`{"id":"logout-1","category":"authentication","type":"userLoggedOut","coreCustomerId":"cust-1","sessionId":%q}`, sid)); len(r.Flags) != 0 {
		t.Errorf("the logout answered flags %v", r.Flags)
	}

	// The stored login carries the session id Herald gave it.
	var stored apiEvent
	if err := json.Unmarshal(s.mustDo("GET", "/v1/events/login-1", nil, 200), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.SessionID != sid {
		t.Errorf("the stored login has sessionId %q, want %q", stored.SessionID, sid)
	}

	x := s.session(sid)
	if x.EndedAt == nil || x.EndReason != "logout" || x.EventCount != 4 || x.EntityID != "cust-1" || x.StartEventID != "login-1" {
		t.Errorf("GET /v1/sessions/%s = %+v, want ended by logout with 4 events of cust-1", sid, x)
	}
	var list struct {
		Sessions []session `json:"sessions"`
	}
	if err := json.Unmarshal(s.mustDo("GET", "/v1/sessions?entity=cust-1&state=closed", nil, 200), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Sessions) != 1 || list.Sessions[0].ID != sid {
		t.Errorf("GET /v1/sessions?entity=cust-1&state=closed = %+v", list.Sessions)
	}
	if n := len(s.eventList("/v1/events?sessionId=" + sid)); n != 4 {
		t.Errorf("GET /v1/events?sessionId=%s lists %d events, want 4", sid, n)
	}

	// The audit of the session: started and ended, by the key that sent
	// the login and the logout.
	sessionEvents := s.audit(url.Values{"subjectType": {"session"}})
	if got, want := summaries(sessionEvents), []string{"session started " + sid, "session ended " + sid}; !slices.Equal(got, want) {
		t.Fatalf("GET /v1/audit?subjectType=session = %q, want %q", got, want)
	}
	for _, e := range sessionEvents {
		if e.AgentID != keyID || e.AgentType != "apikey" || e.Origin != "system" || e.Hash == "" {
			t.Errorf("%s: agent %s/%s, origin %s, hash %q; want the key %s, origin system and a hash",
				e.summary(), e.AgentID, e.AgentType, e.Origin, e.Hash, keyID)
		}
	}
	if r := sessionEvents[1].dataField(t, "reason"); r != "logout" {
		t.Errorf("session ended has data.reason %q, want logout", r)
	}
	for name, want := range map[string]string{"subject_type": "session", "subject_id": sid, "verb": "ended", "aid": "default"} {
		if got := sessionEvents[1].dataField(t, name); got != want {
			t.Errorf("session ended has data.%s %q, want %q (the Lytics alert templates read it)", name, got, want)
		}
	}

	// All of Herald's own events: the bootstrap's, then the journey's.
	system := s.eventList("/v1/events?origin=system&limit=1000")
	var visitID string
	for _, e := range system {
		if e.Category == "visit" {
			visitID = e.PrimaryID
		}
	}
	want := []string{
		"account created default", "apikey created " + keyID,
		"entity created cust-1", "visit started " + visitID, "session started " + sid, "session ended " + sid,
	}
	if got := summaries(system); !slices.Equal(got, want) || visitID == "" {
		t.Fatalf("GET /v1/events?origin=system = %q, want %q", got, want)
	}
	// The journey events follow the login that caused them.
	if system[2].Seq <= stored.Seq {
		t.Errorf("entity created has seq %d, before the login's %d", system[2].Seq, stored.Seq)
	}

	// Events for an unknown or an ended session are stored and flagged.
	unknown := s.ingest(`{"id":"stray","category":"transfers","type":"singleTransferCreated","sessionId":"no-such-session","data":{"amount":"1.00"}}`)
	if !slices.Equal(unknown.Flags, []string{"sessionUnknown"}) {
		t.Errorf("an event of an unknown session answered flags %v, want [sessionUnknown]", unknown.Flags)
	}
	var strayStored apiEvent
	if err := json.Unmarshal(s.mustDo("GET", "/v1/events/stray", nil, 200), &strayStored); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(strayStored.Flags, []string{"sessionUnknown"}) {
		t.Errorf("the stored event of an unknown session has flags %v", strayStored.Flags)
	}
	late := s.ingest(fmt.Sprintf(`{"id":"late","category":"transfers","type":"singleTransferCreated","sessionId":%q,"data":{"amount":"1.00"}}`, sid))
	if !slices.Equal(late.Flags, []string{"sessionEnded"}) {
		t.Errorf("an event of an ended session answered flags %v, want [sessionEnded]", late.Flags)
	}
	if x := s.session(sid); x.EventCount != 4 {
		t.Errorf("the ended session counts %d events after a late one, want 4", x.EventCount)
	}
	s.mustDo("GET", "/v1/sessions/no-such-session", nil, 404)
	logsHaveNoKey(t, s)
}

func TestLoginEventsLogoutSQLite(t *testing.T) {
	t.Parallel()
	loginEventsLogout(t)
}

func TestLoginEventsLogoutPostgres(t *testing.T) {
	t.Parallel()
	loginEventsLogout(t, "--db", postgresTestURL(t))
}

// journeyTimeouts checks that the sweeper ends an idle session and visit
// with no request arriving, and that it still does after a crash.
func journeyTimeouts(t *testing.T, args ...string) {
	dataDir, key := t.TempDir(), randomKey()
	args = append(args, "--sweep-interval", "100ms")
	s := startServer(t, dataDir, key, args...)
	s.mustDo("PUT", "/v1/settings", []byte(`{"sessions":{"inactivityTimeout":"1s"},"visits":{"timeout":"1s"}}`), 200)

	timeout := time.Second

	// waitEnded polls the session until the sweeper ended it, and the
	// audit until it holds its terminated event and the visit's ended one.
	waitEnded := func(s *server, sid, entity string) (session, apiEvent, apiEvent) {
		t.Helper()
		var x session
		poll(t, 15*time.Second, "session "+sid+" ended", func() bool {
			x = s.session(sid)
			return x.EndedAt != nil
		})
		if x.EndReason != "timeout" || !x.EndedAt.Equal(x.LastActivityAt.Add(timeout)) || x.EntityID != entity {
			t.Errorf("session %s = %+v, want ended by timeout %s after its last activity", sid, x, timeout)
		}
		var terminated, visitEnded []apiEvent
		poll(t, 15*time.Second, "session terminated and visit ended in the audit", func() bool {
			terminated = s.audit(url.Values{"subjectType": {"session"}, "subjectId": {sid}, "verb": {"terminated"}})
			visitEnded = nil
			for _, e := range s.audit(url.Values{"subjectType": {"visit"}, "verb": {"ended"}}) {
				if e.dataField(t, "entityId") == entity {
					visitEnded = append(visitEnded, e)
				}
			}
			return len(terminated) > 0 && len(visitEnded) > 0
		})
		if len(terminated) != 1 || len(visitEnded) != 1 {
			t.Fatalf("%d session terminated and %d visit ended events, want one each", len(terminated), len(visitEnded))
		}
		for _, e := range []apiEvent{terminated[0], visitEnded[0]} {
			if e.AgentID != "system" || e.AgentType != "system" || e.dataField(t, "reason") != "timeout" {
				t.Errorf("%s: agent %s/%s, data %s; want agent system and reason timeout", e.summary(), e.AgentID, e.AgentType, e.Data)
			}
		}
		// It ended when the timeout ran out; Herald noticed a little later.
		if !terminated[0].OccurredAt.Equal(*x.EndedAt) || terminated[0].ReceivedAt.Before(terminated[0].OccurredAt) {
			t.Errorf("session terminated occurred %v, received %v; the session ended %v",
				terminated[0].OccurredAt, terminated[0].ReceivedAt, x.EndedAt)
		}
		var visits struct {
			Visits []struct {
				EndReason string     `json:"endReason"`
				EndedAt   *time.Time `json:"endedAt"`
			} `json:"visits"`
		}
		if err := json.Unmarshal(s.mustDo("GET", "/v1/visits?entity="+entity, nil, 200), &visits); err != nil {
			t.Fatal(err)
		}
		if len(visits.Visits) != 1 || visits.Visits[0].EndedAt == nil || visits.Visits[0].EndReason != "timeout" {
			t.Errorf("GET /v1/visits?entity=%s = %+v, want one visit ended by timeout", entity, visits.Visits)
		}
		return x, terminated[0], visitEnded[0]
	}

	// No request after the login: the sweeper ends both.
	sid := s.ingest(`{"category":"authentication","type":"userLoggedIn","coreCustomerId":"cust-idle"}`).SessionID
	waitEnded(s, sid, "cust-idle")

	// A crash before the timeout: the restarted server ends them. The
	// timeout is longer, so that a slow machine still crashes before it.
	timeout = 2 * time.Second
	s.mustDo("PUT", "/v1/settings", []byte(`{"sessions":{"inactivityTimeout":"2s"},"visits":{"timeout":"2s"}}`), 200)
	sid = s.ingest(`{"category":"authentication","type":"userLoggedIn","coreCustomerId":"cust-crash"}`).SessionID
	if x := s.session(sid); x.EndedAt != nil {
		t.Fatalf("session %s ended before the crash: %+v", sid, x)
	}
	s.kill()
	restarted := time.Now().UTC().Truncate(time.Microsecond)
	s = startServer(t, dataDir, key, args...)
	_, terminated, visitEnded := waitEnded(s, sid, "cust-crash")
	for _, e := range []apiEvent{terminated, visitEnded} {
		if e.ReceivedAt.Before(restarted) {
			t.Errorf("%s was received %v, before the restart at %v", e.summary(), e.ReceivedAt, restarted)
		}
	}
	if r := s.verifyAudit(); !r.Verified {
		t.Errorf("the audit chain after the sweeps: %+v", r)
	}
}

func TestJourneyTimeoutsSQLite(t *testing.T) {
	t.Parallel()
	journeyTimeouts(t)
}

func TestJourneyTimeoutsPostgres(t *testing.T) {
	t.Parallel()
	journeyTimeouts(t, "--db", postgresTestURL(t))
}

// auditReport is the answer of GET /v1/audit/verify.
type auditReport struct {
	AccountID string `json:"accountId"`
	Verified  bool   `json:"verified"`
	Checked   int64  `json:"checked"`
	LastSeq   int64  `json:"lastSeq"`
	Head      string `json:"head"`
	Break     *struct {
		Seq    int64  `json:"seq"`
		ID     string `json:"id"`
		Reason string `json:"reason"`
	} `json:"break"`
}

func (s *server) verifyAudit() auditReport {
	s.t.Helper()
	var r auditReport
	if err := json.Unmarshal(s.mustDo("GET", "/v1/audit/verify", nil, 200), &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// runHerald runs the binary with args and returns its standard output,
// its standard error and its exit status.
func runHerald(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("herald %s: %v: %s%s", strings.Join(args, " "), err, &stdout, &stderr)
	return "", "", 0
}

// runHeraldCombined is runHerald with both outputs in one string.
func runHeraldCombined(t *testing.T, args ...string) (string, int) {
	t.Helper()
	stdout, stderr, code := runHerald(t, args...)
	return stdout + stderr, code
}

// forgeData returns body, a stored event, with data.entityId changed.
func forgeData(t *testing.T, body []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("stored body %s: %v", body, err)
	}
	data, ok := m["data"].(map[string]any)
	if !ok {
		t.Fatalf("stored body %s has no data object", body)
	}
	data["entityId"] = "cust-forged"
	forged, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return forged
}

// auditVerify writes system events, checks the chain holds by `herald
// audit verify` and GET /v1/audit/verify, changes one stored system event
// with tamper and checks that both report the break at that event.
func auditVerify(t *testing.T, dataDir, db string, tamper func(seq int64), args ...string) {
	key := randomKey()
	s := startServer(t, dataDir, key, args...)
	s.mustDo("PUT", "/v1/settings", []byte(`{"unknownTypes":"accept","sessions":{"maxLength":"8h"}}`), 200)
	sid := s.ingest(`{"category":"authentication","type":"userLoggedIn","coreCustomerId":"cust-v"}`).SessionID
	s.ingest(fmt.Sprintf(`{"category":"authentication","type":"userLoggedOut","coreCustomerId":"cust-v","sessionId":%q}`, sid))
	system := s.eventList("/v1/events?origin=system&limit=1000")

	out, code := runHeraldCombined(t, "audit", "verify", "--url", s.URL, "--key", s.Key)
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("herald audit verify against the server: exit %d: %s", code, out)
	}
	if want := fmt.Sprintf("%d system events", len(system)); !strings.Contains(out, want) {
		t.Errorf("herald audit verify does not say %q: %s", want, out)
	}
	r := s.verifyAudit()
	if !r.Verified || r.Checked != int64(len(system)) || r.LastSeq != system[len(system)-1].Seq ||
		r.Head != system[len(system)-1].Hash || r.Break != nil || r.AccountID != "default" {
		t.Fatalf("GET /v1/audit/verify = %+v, want verified over the %d system events", r, len(system))
	}
	s.stop()
	out, code = runHeraldCombined(t, "audit", "verify", "--db", db)
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("herald audit verify --db before the change: exit %d: %s", code, out)
	}

	// Change the session started event, as someone with the database could.
	var target apiEvent
	before := 0 // the system events before it, whose links hold
	for i, e := range system {
		if e.Category == "session" && e.Type == "started" {
			target, before = e, i
		}
	}
	if target.ID == "" {
		t.Fatalf("no session started among %q", summaries(system))
	}
	tamper(target.Seq)

	out, code = runHeraldCombined(t, "audit", "verify", "--db", db)
	if code == 0 {
		t.Fatalf("herald audit verify --db after changing seq %d exited 0: %s", target.Seq, out)
	}
	for _, want := range []string{"BROKEN", fmt.Sprintf("seq %d", target.Seq), target.ID} {
		if !strings.Contains(out, want) {
			t.Errorf("herald audit verify --db does not name %q: %s", want, out)
		}
	}
	stdout, stderr, code := runHerald(t, "audit", "verify", "--db", db, "--json")
	out = stdout + stderr
	var jr auditReport
	if err := json.Unmarshal([]byte(stdout), &jr); err != nil || code == 0 || jr.Verified || jr.Break == nil ||
		jr.Break.Seq != target.Seq || jr.Break.ID != target.ID {
		t.Errorf("herald audit verify --db --json: exit %d, %+v (%v): %s", code, jr, err, out)
	}

	// The server, restarted on the changed database, says the same.
	s = startServer(t, dataDir, key, args...)
	r = s.verifyAudit()
	if r.Verified || r.Break == nil || r.Break.Seq != target.Seq || r.Break.ID != target.ID || r.Checked != int64(before) {
		t.Errorf("GET /v1/audit/verify after the change = %+v (break %+v), want broken at seq %d, %s", r, r.Break, target.Seq, target.ID)
	}
	out, code = runHeraldCombined(t, "audit", "verify", "--url", s.URL, "--key", s.Key)
	if code == 0 || !strings.Contains(out, fmt.Sprintf("seq %d", target.Seq)) || !strings.Contains(out, target.ID) {
		t.Errorf("herald audit verify against the server after the change: exit %d: %s", code, out)
	}
}

func TestAuditVerifySQLite(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	path := filepath.Join(dataDir, "herald.db")
	auditVerify(t, dataDir, path, func(seq int64) {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var body []byte
		if err := db.QueryRow("SELECT body FROM events WHERE account_id = 'default' AND seq = ?", seq).Scan(&body); err != nil {
			t.Fatal(err)
		}
		res, err := db.Exec("UPDATE events SET body = ? WHERE account_id = 'default' AND seq = ?", forgeData(t, body), seq)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("the UPDATE changed %d rows", n)
		}
	})
}

func TestAuditVerifyPostgres(t *testing.T) {
	t.Parallel()
	dbURL := postgresTestURL(t)
	auditVerify(t, t.TempDir(), dbURL, func(seq int64) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var body []byte
		if err := conn.QueryRow(ctx, "SELECT body FROM events WHERE account_id = 'default' AND seq = $1", seq).Scan(&body); err != nil {
			t.Fatal(err)
		}
		tag, err := conn.Exec(ctx, "UPDATE events SET body = $1 WHERE account_id = 'default' AND seq = $2", forgeData(t, body), seq)
		if err != nil {
			t.Fatal(err)
		}
		if tag.RowsAffected() != 1 {
			t.Fatalf("the UPDATE changed %d rows", tag.RowsAffected())
		}
	}, "--db", dbURL)
}

// auditLyticsFilters checks GET /v1/audit with the filter keys of the
// Lytics document, after API changes that each wrote a system event.
func auditLyticsFilters(t *testing.T, args ...string) {
	s := startServer(t, t.TempDir(), randomKey(), args...)
	bootstrapID := s.bootstrapKeyID()
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(s.mustDo("POST", "/v1/keys", []byte(`{"name":"reader","scopes":["read"]}`), 201), &created); err != nil {
		t.Fatal(err)
	}
	s.mustDo("DELETE", "/v1/keys/"+created.ID, nil, 204)
	s.mustDo("PUT", "/v1/settings", []byte(`{"unknownTypes":"reject"}`), 200)

	for _, c := range []struct {
		query url.Values
		want  []string
	}{
		{url.Values{"system_event_type": {"created"}},
			[]string{"account created default", "apikey created " + bootstrapID, "apikey created " + created.ID}},
		{url.Values{"system_event_type": {"deleted"}},
			[]string{"apikey deleted " + created.ID}},
		{url.Values{"system_event_multiple_types": {"updated,created"}},
			[]string{"account created default", "apikey created " + bootstrapID, "apikey created " + created.ID, "settings updated default"}},
		{url.Values{"system_event_multiple_types": {"updated", "deleted"}},
			[]string{"apikey deleted " + created.ID, "settings updated default"}},
		{url.Values{"system_event_sources": {`{"apikey":[]}`}},
			[]string{"apikey created " + bootstrapID, "apikey created " + created.ID, "apikey deleted " + created.ID}},
		{url.Values{"system_event_sources": {fmt.Sprintf(`{"apikey":[%q]}`, created.ID)}},
			[]string{"apikey created " + created.ID, "apikey deleted " + created.ID}},
		{url.Values{"system_event_sources": {fmt.Sprintf(`{"apikey":[%q],"settings":[]}`, created.ID)}},
			[]string{"apikey created " + created.ID, "apikey deleted " + created.ID, "settings updated default"}},
		{url.Values{"system_event_sources": {`{"apikey":[]}`}, "system_event_type": {"created"}},
			[]string{"apikey created " + bootstrapID, "apikey created " + created.ID}},
		{url.Values{"system_event_sources": {`{"work":[]}`}},
			[]string{}},
	} {
		if got := summaries(s.audit(c.query)); !slices.Equal(got, c.want) {
			t.Errorf("GET /v1/audit?%s = %q, want %q", c.query.Encode(), got, c.want)
		}
	}

	// The settings change carries what changed, before and after, and
	// the Lytics template's members.
	settings := s.audit(url.Values{"system_event_sources": {`{"settings":[]}`}})
	if len(settings) != 1 || settings[0].AgentID != bootstrapID ||
		!strings.Contains(string(settings[0].Data), `"before":{"unknownTypes":"accept"}`) ||
		!strings.Contains(string(settings[0].Data), `"after":{"unknownTypes":"reject"}`) ||
		settings[0].dataField(t, "verb") != "updated" || settings[0].dataField(t, "subject_type") != "settings" {
		t.Errorf("settings updated = %+v, data %s", settings, settingsData(settings))
	}
	// The key's created event carries no secret.
	for _, e := range s.audit(url.Values{"system_event_sources": {`{"apikey":[]}`}}) {
		if strings.Contains(string(e.Data), "secret") || strings.Contains(string(e.Data), s.Key) {
			t.Errorf("%s data holds a secret: %s", e.summary(), e.Data)
		}
	}

	for _, bad := range []string{`{"apikey":`, `["apikey"]`, `{"apikey":"key_1"}`, `null`, `{"apikey":[]} {}`} {
		code, body, err := s.do("GET", "/v1/audit?system_event_sources="+url.QueryEscape(bad), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if code != 400 || !slices.Contains(problemPointers(t, body), "?system_event_sources") {
			t.Errorf("system_event_sources=%s: %d %s, want 400 naming ?system_event_sources", bad, code, body)
		}
	}
	code, body, err := s.do("GET", "/v1/audit?system_event_type="+url.QueryEscape("not a verb"), "", nil)
	if err != nil || code != 400 || !slices.Contains(problemPointers(t, body), "?system_event_type") {
		t.Errorf("system_event_type=not a verb: %d %s %v, want 400 naming ?system_event_type", code, body, err)
	}
}

func settingsData(events []apiEvent) string {
	var out []string
	for _, e := range events {
		out = append(out, string(e.Data))
	}
	return strings.Join(out, "; ")
}

func TestAuditLyticsFiltersSQLite(t *testing.T) {
	t.Parallel()
	auditLyticsFilters(t)
}

func TestAuditLyticsFiltersPostgres(t *testing.T) {
	t.Parallel()
	auditLyticsFilters(t, "--db", postgresTestURL(t))
}
