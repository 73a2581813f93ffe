package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// problemPointers returns the pointers of a problem body's errors.
func problemPointers(t *testing.T, body []byte) []string {
	t.Helper()
	var p struct {
		Errors []struct {
			Pointer string `json:"pointer"`
			Detail  string `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem %s: %v", body, err)
	}
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Pointer)
	}
	slices.Sort(out)
	return out
}

// typesLifecyclesProfiles walks the README's example and the rest of what
// issue 4 promises against a real server, then restarts it and checks that
// lifecycles and profiles were stored, not just kept in memory.
func typesLifecyclesProfiles(t *testing.T, args ...string) {
	dataDir, key := t.TempDir(), randomKey()
	s := startServer(t, dataDir, key, args...)

	// The built-in catalog is there, and its schemas are served.
	var list struct {
		EventTypes []struct {
			Category, Type string
			BuiltIn        bool
		} `json:"eventTypes"`
	}
	if err := json.Unmarshal(s.mustDo("GET", "/v1/event-types", nil, 200), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, et := range list.EventTypes {
		names = append(names, et.Category+"/"+et.Type)
	}
	for _, want := range []string{"authentication/login", "transactions/transaction", "authentication/userLoggedIn", "authentication/userLoggedOut", "transfers/singleTransferCreated"} {
		if !slices.Contains(names, want) {
			t.Errorf("built-in %s missing from %v", want, names)
		}
	}
	if !strings.Contains(string(s.mustDo("GET", "/v1/schemas/singleTransferCreatedEventSchema", nil, 200)), `"amount"`) {
		t.Error("singleTransferCreatedEventSchema does not describe amount")
	}

	// A login attempted then succeeded: one lifecycle, one profile update.
	s.mustDo("POST", "/v1/events", []byte(`{"id":"l1-a","category":"authentication","type":"login","eventStatus":"attempted",
		"occurredAt":"2026-11-23T10:00:00Z","coreCustomerId":"cust-42",
		"data":{"external_login_id":"lg-1","ip_address":"203.0.113.7","login_method":"password"}}`), 201)
	var profile struct {
		Attributes map[string]struct {
			Value   json.RawMessage `json:"value"`
			EventID string          `json:"eventId"`
		} `json:"attributes"`
		EventCount int64            `json:"eventCount"`
		Counts     map[string]int64 `json:"counts"`
	}
	if err := json.Unmarshal(s.mustDo("GET", "/v1/profiles/cust-42", nil, 200), &profile); err != nil {
		t.Fatal(err)
	}
	if len(profile.Attributes) != 0 || profile.EventCount != 1 {
		t.Errorf("after attempted: %d attributes, %d events; an attempted login must not persist", len(profile.Attributes), profile.EventCount)
	}
	s.mustDo("POST", "/v1/events", []byte(`{"id":"l1-s","category":"authentication","type":"login","event_status":"succeeded",
		"occurredAt":"2026-11-23T10:00:02Z","coreCustomerId":"cust-42",
		"data":{"external_login_id":"lg-1","ip_address":"203.0.113.7","login_method":"otp"}}`), 201)

	checkStored := func(s *server) {
		t.Helper()
		var lc struct {
			Type     string `json:"type"`
			Status   string `json:"status"`
			Terminal bool   `json:"terminal"`
			History  []struct {
				Status  string `json:"status"`
				EventID string `json:"eventId"`
			} `json:"history"`
			Data   map[string]any    `json:"data"`
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(s.mustDo("GET", "/v1/lifecycles/lg-1", nil, 200), &lc); err != nil {
			t.Fatal(err)
		}
		if lc.Type != "login" || lc.Status != "succeeded" || !lc.Terminal || len(lc.History) != 2 ||
			lc.History[0].EventID != "l1-a" || lc.History[1].EventID != "l1-s" || len(lc.Events) != 2 || lc.Data["login_method"] != "otp" {
			t.Errorf("lifecycle lg-1 = %+v", lc)
		}
		if err := json.Unmarshal(s.mustDo("GET", "/v1/profiles/cust-42", nil, 200), &profile); err != nil {
			t.Fatal(err)
		}
		if a := profile.Attributes["login_method"]; string(a.Value) != `"otp"` || a.EventID != "l1-s" {
			t.Errorf("profile attribute login_method = %s set by %q, want \"otp\" by l1-s", a.Value, a.EventID)
		}
		if profile.Counts["authentication/login"] != 2 {
			t.Errorf("profile counts = %v", profile.Counts)
		}
	}
	checkStored(s)

	// Validation: every violation named, nothing stored.
	code, body, err := s.do("POST", "/v1/events", "application/json", []byte(`{"id":"t1","category":"transactions","type":"transaction",
		"eventStatus":"settled","data":{"external_transaction_id":"tx-1","amount":"12,50"}}`))
	if err != nil || code != 400 {
		t.Fatalf("invalid transaction: %d %s %v", code, body, err)
	}
	if got, want := problemPointers(t, body), []string{"/data/amount", "/data/currency", "/eventStatus"}; !slices.Equal(got, want) {
		// /data/currency is the missing required field.
		t.Errorf("problem pointers = %v, want %v: %s", got, want, body)
	}
	s.mustDo("GET", "/v1/events/t1", nil, 404)

	// A transition the type does not allow is refused with its field.
	s.mustDo("POST", "/v1/events", []byte(`{"category":"transactions","type":"transaction","eventStatus":"approved",
		"occurredAt":"2026-11-23T10:00:00Z","data":{"external_transaction_id":"tx-2","amount":"5.00","currency":"EUR"}}`), 201)
	code, body, _ = s.do("POST", "/v1/events", "application/json", []byte(`{"category":"transactions","type":"transaction","eventStatus":"pending",
		"occurredAt":"2026-11-23T10:00:05Z","data":{"external_transaction_id":"tx-2","amount":"5.00","currency":"EUR"}}`))
	if code != 400 || !slices.Equal(problemPointers(t, body), []string{"/eventStatus"}) {
		t.Errorf("pending after approved: %d %s, want 400 at /eventStatus", code, body)
	}

	// An account's own type, with a custom status on a built-in one.
	s.mustDo("POST", "/v1/event-types", []byte(`{"category":"payments","type":"refundIssued",
		"schema":{"type":"object","required":["amount"],"properties":{"amount":{"type":"string"}}},
		"statuses":[{"name":"requested","description":"asked for"},{"name":"paid","description":"money sent","persist":true}],
		"terminalStatuses":["paid"],"lifecycleIdPointer":"/data/refund_id"}`), 201)
	code, body, _ = s.do("POST", "/v1/event-types", "application/json", []byte(`{"category":"payments","type":"broken","schema":{"type":"nonsense"},"statuses":[],"terminalStatuses":[]}`))
	if code != 400 || !strings.Contains(string(body), "/schema") {
		t.Errorf("bad schema: %d %s, want 400 naming /schema", code, body)
	}
	var login struct {
		Statuses []struct{ Name string } `json:"statuses"`
	}
	if err := json.Unmarshal(s.mustDo("GET", "/v1/event-types/authentication/login", nil, 200), &login); err != nil || len(login.Statuses) != 3 {
		t.Fatalf("built-in login type: %+v %v", login, err)
	}
	ext, _ := json.Marshal(map[string]any{"statuses": append([]map[string]string{
		{"name": "attempted", "description": "started"}, {"name": "succeeded", "description": "in"}, {"name": "failed", "description": "refused"}},
		map[string]string{"name": "challenged", "description": "asked for a second factor"}),
		"terminalStatuses": []string{"succeeded", "failed"},
		"transitions":      map[string][]string{"attempted": {"succeeded", "failed", "challenged"}, "challenged": {"succeeded", "failed"}}})
	s.mustDo("PUT", "/v1/event-types/authentication/login", ext, 200)
	s.mustDo("POST", "/v1/events", []byte(`{"category":"authentication","type":"login","eventStatus":"challenged",
		"coreCustomerId":"cust-7","data":{"external_login_id":"lg-2"}}`), 201)

	// Restart: lifecycles, profiles and types are on disk.
	s.kill()
	s = startServer(t, dataDir, key, args...)
	checkStored(s)
	s.mustDo("GET", "/v1/event-types/payments/refundIssued", nil, 200)
	s.mustDo("GET", "/v1/lifecycles/lg-2", nil, 200)

	// Right to erasure: the profile goes, the events keep their envelope.
	s.mustDo("DELETE", "/v1/profiles/cust-42", nil, 200)
	s.mustDo("GET", "/v1/profiles/cust-42", nil, 404)
	var ev map[string]any
	if err := json.Unmarshal(s.mustDo("GET", "/v1/events/l1-s", nil, 200), &ev); err != nil {
		t.Fatal(err)
	}
	if ev["data"] != nil || ev["redacted"] != true || ev["coreCustomerId"] != "cust-42" || ev["type"] != "login" {
		t.Errorf("erased event = %v", ev)
	}
	logsHaveNoKey(t, s)
}

func TestTypesLifecyclesProfilesSQLite(t *testing.T) {
	t.Parallel()
	typesLifecyclesProfiles(t)
}

func TestTypesLifecyclesProfilesPostgres(t *testing.T) {
	t.Parallel()
	typesLifecyclesProfiles(t, "--db", postgresTestURL(t))
}
