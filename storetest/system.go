package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// testSystemEventsForChanges checks that every change made through the
// API writes one system event, in the same commit, that says what changed
// and who changed it, and that a change refused writes none.
func testSystemEventsForChanges(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	admin := herald.Actor{ID: "key_admin", Type: herald.AgentTypeAPIKey}
	ctx := herald.NewContextWithActor(t.Context(), admin)

	// change runs do, which must succeed, and returns the one event it
	// wrote to the account: a system event right after the last one, at
	// the time of the call.
	change := func(what, accountID string, do func() error) *herald.Event {
		t.Helper()
		before := lastSeq(t, s, accountID)
		start := time.Now()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		end := time.Now()
		written := allEvents(t, s, accountID, herald.EventFilter{AfterSeq: before})
		if len(written) != 1 {
			t.Fatalf("%s wrote %s; want one system event", what, fmtSystemEvents(written))
		}
		e := written[0]
		if e.Seq != before+1 {
			t.Errorf("%s: system event has seq %d, want %d", what, e.Seq, before+1)
		}
		wantChangeTime(t, what, e, start, end)
		return e
	}
	// refused runs do, which must fail with code, and checks that it wrote
	// nothing to the account.
	refused := func(what, accountID, code string, do func() error) {
		t.Helper()
		before := allEvents(t, s, accountID, herald.EventFilter{})
		wantCode(t, what, do(), code)
		if after := allEvents(t, s, accountID, herald.EventFilter{}); len(after) != len(before) {
			t.Errorf("%s was refused but wrote %s", what, fmtSystemEvents(after[len(before):]))
		}
	}

	// CreateAccount writes two: the account, then its first key. Made
	// without a key in the context (Herald's first start), their agent is
	// Herald itself.
	secret, prefix, hash := herald.NewKeySecret()
	first := &herald.APIKey{
		ID: "key_first", AccountID: "acme", Name: "first", Prefix: prefix,
		Scopes: []string{herald.ScopeAdmin}, CreatedAt: baseTime, Hash: hash,
	}
	start := time.Now()
	if err := s.CreateAccount(t.Context(), &herald.Account{ID: "acme", Name: "Acme", CreatedAt: baseTime}, first); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	end := time.Now()
	created := allEvents(t, s, "acme", herald.EventFilter{})
	if len(created) != 2 {
		t.Fatalf("CreateAccount wrote %s; want account created, apikey created", fmtSystemEvents(created))
	}
	for i, e := range created {
		if e.Seq != int64(i+1) {
			t.Errorf("CreateAccount: system event %d has seq %d, want %d", i, e.Seq, i+1)
		}
		wantChangeTime(t, "CreateAccount", e, start, end)
	}
	d := wantSystemEvent(t, "CreateAccount", created[0], "acme", herald.SubjectAccount, herald.VerbCreated, "acme", herald.SystemActor)
	wantMember(t, "CreateAccount", d, "/after/id", "acme")
	wantMember(t, "CreateAccount", d, "/after/name", "Acme")
	d = wantSystemEvent(t, "CreateAccount", created[1], "acme", herald.SubjectAPIKey, herald.VerbCreated, first.ID, herald.SystemActor)
	wantMember(t, "CreateAccount", d, "/after/id", first.ID)
	wantMember(t, "CreateAccount", d, "/after/prefix", prefix)
	if _, ok := d["before"]; ok {
		t.Errorf("CreateAccount: apikey created has data.before: %s", created[1].Data)
	}

	// Each change by a key names the key.
	k := newKey("acme", "ci", baseTime.Add(time.Second))
	e := change("CreateKey", "acme", func() error { return s.CreateKey(ctx, k) })
	d = wantSystemEvent(t, "CreateKey", e, "acme", herald.SubjectAPIKey, herald.VerbCreated, k.ID, admin)
	wantMember(t, "CreateKey", d, "/after/id", k.ID)
	wantMember(t, "CreateKey", d, "/after/name", "ci")

	e = change("DeleteKey", "acme", func() error { return s.DeleteKey(ctx, "acme", k.ID) })
	d = wantSystemEvent(t, "DeleteKey", e, "acme", herald.SubjectAPIKey, herald.VerbDeleted, k.ID, admin)
	wantMember(t, "DeleteKey", d, "/before/id", k.ID)
	wantMember(t, "DeleteKey", d, "/before/name", "ci")
	if _, ok := d["after"]; ok {
		t.Errorf("DeleteKey: apikey deleted has data.after: %s", e.Data)
	}

	e = change("CreateEventType", "acme", func() error { return s.CreateEventType(ctx, simpleType("acme", "misc", "thing")) })
	d = wantSystemEvent(t, "CreateEventType", e, "acme", herald.SubjectEventType, herald.VerbCreated, "misc/thing", admin)
	wantMember(t, "CreateEventType", d, "/after/category", "misc")
	wantMember(t, "CreateEventType", d, "/after/type", "thing")

	e = change("PutEventType (new)", "acme", func() error {
		created, err := s.PutEventType(ctx, payoutType("acme", baseTime))
		if err == nil && !created {
			err = fmt.Errorf("created = false for a new type")
		}
		return err
	})
	d = wantSystemEvent(t, "PutEventType (new)", e, "acme", herald.SubjectEventType, herald.VerbCreated, "payments/payout", admin)
	wantMember(t, "PutEventType (new)", d, "/after/description", payoutType("acme", baseTime).Description)

	// An update carries the members that changed, before and after, and
	// not those that did not.
	replaced := payoutType("acme", baseTime.Add(time.Hour))
	replaced.Description = "Replaced."
	e = change("PutEventType (update)", "acme", func() error {
		created, err := s.PutEventType(ctx, replaced)
		if err == nil && created {
			err = fmt.Errorf("created = true for an existing type")
		}
		return err
	})
	d = wantSystemEvent(t, "PutEventType (update)", e, "acme", herald.SubjectEventType, herald.VerbUpdated, "payments/payout", admin)
	wantMember(t, "PutEventType (update)", d, "/before/description", payoutType("acme", baseTime).Description)
	wantMember(t, "PutEventType (update)", d, "/after/description", "Replaced.")
	for _, unchanged := range []string{"/before/category", "/after/category", "/before/statuses", "/after/schema"} {
		if v, ok := member(d, unchanged); ok {
			t.Errorf("PutEventType (update): data%s = %v, but it did not change", unchanged, v)
		}
	}

	e = change("DeleteEventType", "acme", func() error { return s.DeleteEventType(ctx, "acme", "misc", "thing") })
	d = wantSystemEvent(t, "DeleteEventType", e, "acme", herald.SubjectEventType, herald.VerbDeleted, "misc/thing", admin)
	wantMember(t, "DeleteEventType", d, "/before/type", "thing")

	settings := herald.DefaultSettings()
	settings.UnknownTypes = herald.UnknownTypesReject
	settings.Visits.Timeout = herald.Duration(time.Hour)
	e = change("PutSettings", "acme", func() error { return s.PutSettings(ctx, "acme", settings) })
	d = wantSystemEvent(t, "PutSettings", e, "acme", herald.SubjectSettings, herald.VerbUpdated, "acme", admin)
	wantMember(t, "PutSettings", d, "/before/unknownTypes", herald.UnknownTypesAccept)
	wantMember(t, "PutSettings", d, "/after/unknownTypes", herald.UnknownTypesReject)
	wantMember(t, "PutSettings", d, "/after/visits/timeout", "1h0m0s")
	for _, unchanged := range []string{"/before/sessions", "/after/journeyEvents"} {
		if v, ok := member(d, unchanged); ok {
			t.Errorf("PutSettings: data%s = %v, but it did not change", unchanged, v)
		}
	}
	// Without a key in the context, Herald is the agent.
	e = change("PutSettings (no key)", "acme", func() error { return s.PutSettings(t.Context(), "acme", herald.DefaultSettings()) })
	wantSystemEvent(t, "PutSettings (no key)", e, "acme", herald.SubjectSettings, herald.VerbUpdated, "acme", herald.SystemActor)

	// The erasure names the entity and holds none of what it erased.
	appendOne(t, s, "acme", typedEvent(t, &herald.EventType{Category: "customers", Type: "profileUpdated", Persist: true}, map[string]any{
		"id": "p1", "coreCustomerId": "C1", "host": "10.9.8.7", "data": map[string]any{"email": "ann@example.com"},
	}, baseTime.Add(time.Minute)))
	e = change("EraseProfile", "acme", func() error { _, err := s.EraseProfile(ctx, "acme", "C1"); return err })
	wantSystemEvent(t, "EraseProfile", e, "acme", herald.SubjectEntity, herald.VerbDeleted, "C1", admin)
	for _, erased := range []string{"ann@example.com", "10.9.8.7"} {
		if bytes.Contains(e.Body, []byte(erased)) {
			t.Errorf("EraseProfile: the system event holds erased data %q: %s", erased, e.Body)
		}
	}

	// Changes refused write nothing.
	newAccount(t, s, "globex")
	refused("CreateAccount (id taken)", "acme", herald.ECONFLICT, func() error {
		return s.CreateAccount(ctx, &herald.Account{ID: "acme", Name: "Again", CreatedAt: baseTime}, newKey("acme", "again", baseTime))
	})
	taken := newKey("acme", "taken", baseTime)
	taken.Hash = hash
	refused("CreateKey (hash taken)", "acme", herald.ECONFLICT, func() error { return s.CreateKey(ctx, taken) })
	refused("DeleteKey (unknown)", "acme", herald.ENOTFOUND, func() error { return s.DeleteKey(ctx, "acme", "key_unknown") })
	refused("DeleteKey (another account's)", "globex", herald.ENOTFOUND, func() error { return s.DeleteKey(ctx, "globex", first.ID) })
	refused("CreateEventType (exists)", "acme", herald.ECONFLICT, func() error {
		return s.CreateEventType(ctx, payoutType("acme", baseTime))
	})
	refused("PutEventType (name taken in another category)", "acme", herald.ECONFLICT, func() error {
		_, err := s.PutEventType(ctx, simpleType("acme", "refunds", "payout"))
		return err
	})
	refused("DeleteEventType (unknown)", "acme", herald.ENOTFOUND, func() error { return s.DeleteEventType(ctx, "acme", "misc", "thing") })
	refused("EraseProfile (unknown)", "acme", herald.ENOTFOUND, func() error { _, err := s.EraseProfile(ctx, "acme", "nobody"); return err })
	orphan := newKey("initech", "first", baseTime)
	orphan.Hash = hash
	wantCode(t, "CreateAccount (first key's hash taken)",
		s.CreateAccount(ctx, &herald.Account{ID: "initech", CreatedAt: baseTime}, orphan), herald.ECONFLICT)
	if got := allEvents(t, s, "initech", herald.EventFilter{}); len(got) != 0 {
		t.Errorf("refused CreateAccount wrote %s", fmtSystemEvents(got))
	}

	// No key's secret or hash is ever written, and acme's changes are
	// acme's alone.
	for _, account := range []string{"acme", "globex"} {
		for _, e := range allEvents(t, s, account, herald.EventFilter{Origin: herald.OriginSystem}) {
			for _, k := range []string{secret, hash, k.Hash} {
				if bytes.Contains(e.Body, []byte(k)) {
					t.Errorf("system event %d of %s holds a key's secret or hash: %s", e.Seq, account, e.Body)
				}
			}
			if e.AccountID != account || !bytes.Contains(e.Data, []byte(`"aid":"`+account+`"`)) {
				t.Errorf("system event %d of %s: account %q, data %s", e.Seq, account, e.AccountID, e.Data)
			}
		}
	}
	if got := allEvents(t, s, "globex", herald.EventFilter{}); len(got) != 2 {
		t.Errorf("globex holds %s; want only its account and key created", fmtSystemEvents(got))
	}
	wantAuditVerified(t, s, "acme")
}

// testFindSystemEvents checks the filters of the audit log: system events
// by verb (Types) and by subject (Sources), alone and together, against
// the answer worked out here from every event of the account.
func testFindSystemEvents(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	admin := herald.Actor{ID: "key_admin", Type: herald.AgentTypeAPIKey}
	ctx := herald.NewContextWithActor(t.Context(), admin)
	_, first := newAccount(t, s, "acme")
	newAccount(t, s, "globex")
	keys := []*herald.APIKey{newKey("acme", "k2", baseTime), newKey("acme", "k3", baseTime)}
	for _, k := range keys {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatalf("CreateKey: %v", err)
		}
	}
	if err := s.DeleteKey(ctx, "acme", keys[1].ID); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	for _, et := range []*herald.EventType{simpleType("acme", "misc", "a"), simpleType("acme", "misc", "b")} {
		if _, err := s.PutEventType(ctx, et); err != nil {
			t.Fatalf("PutEventType: %v", err)
		}
	}
	if _, err := s.PutEventType(ctx, simpleType("acme", "misc", "a")); err != nil { // unchanged: updated all the same
		t.Fatalf("PutEventType: %v", err)
	}
	if err := s.PutSettings(ctx, "acme", herald.DefaultSettings()); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	t0 := baseTime.Add(time.Hour)
	res := appendOne(t, s, "acme",
		journeyEvent(t, "in1", "authentication", "userLoggedIn", "C1", "", t0),
		journeyEvent(t, "in2", "authentication", "userLoggedIn", "C2", "", t0),
		journeyEvent(t, "pv", "web", "pageViewed", "C1", "", t0),
	)
	appendOne(t, s, "acme", journeyEvent(t, "out", "authentication", "userLoggedOut", "C1", res[0].SessionID, t0.Add(time.Minute)))
	// globex's events are never returned for acme.
	appendOne(t, s, "globex", journeyEvent(t, "in1", "authentication", "userLoggedIn", "C1", "", t0))

	all := allEvents(t, s, "acme", herald.EventFilter{})
	match := func(f herald.EventFilter, e *herald.Event) bool {
		return (f.Origin == "" || e.Origin == f.Origin) && (len(f.Types) == 0 || slices.Contains(f.Types, e.Type)) &&
			herald.MatchSources(f.Sources, e) && e.Seq > f.AfterSeq
	}
	system := herald.OriginSystem
	sessionID := res[0].SessionID
	for _, tc := range []struct {
		name   string
		filter herald.EventFilter
		// least is how many events the filter must find at the least, so
		// that a case cannot pass by finding nothing where the oracle
		// finds nothing too.
		least int
	}{
		{"origin system", herald.EventFilter{Origin: system}, 16},
		{"origin api", herald.EventFilter{Origin: herald.OriginAPI}, 4},
		{"one verb", herald.EventFilter{Origin: system, Types: []string{herald.VerbCreated}}, 8},
		{"two verbs", herald.EventFilter{Origin: system, Types: []string{herald.VerbDeleted, herald.VerbUpdated}}, 3},
		{"a verb no event has", herald.EventFilter{Origin: system, Types: []string{herald.VerbFailed}}, 0},
		{"types of client events", herald.EventFilter{Types: []string{"userLoggedIn", "pageViewed"}}, 3},
		{"any subject of a type", herald.EventFilter{Sources: map[string][]string{herald.SubjectAPIKey: {}}}, 4},
		{"one subject", herald.EventFilter{Sources: map[string][]string{herald.SubjectAPIKey: {keys[1].ID}}}, 2},
		{"two subjects", herald.EventFilter{Sources: map[string][]string{herald.SubjectAPIKey: {first.ID, keys[0].ID}}}, 2},
		{"a subject of the type and every subject of another", herald.EventFilter{Sources: map[string][]string{
			herald.SubjectAPIKey: {keys[1].ID}, herald.SubjectEventType: {},
		}}, 5},
		{"subjects of two types", herald.EventFilter{Sources: map[string][]string{
			herald.SubjectEventType: {"misc/a"}, herald.SubjectSession: {sessionID},
		}}, 4},
		{"a subject type with no events", herald.EventFilter{Sources: map[string][]string{herald.SubjectWorkflow: {}}}, 0},
		{"an unknown subject", herald.EventFilter{Sources: map[string][]string{herald.SubjectAPIKey: {"key_unknown"}}}, 0},
		{"sources of client events", herald.EventFilter{Sources: map[string][]string{"authentication": {}}}, 3},
		{"verb and source", herald.EventFilter{Types: []string{herald.VerbDeleted}, Sources: map[string][]string{herald.SubjectAPIKey: {}}}, 1},
		{"verbs and sources", herald.EventFilter{Origin: system, Types: []string{herald.VerbStarted, herald.VerbEnded},
			Sources: map[string][]string{herald.SubjectSession: {}, herald.SubjectEntity: {}}}, 3},
		{"verb, source and afterSeq", herald.EventFilter{Types: []string{herald.VerbCreated},
			Sources: map[string][]string{herald.SubjectAPIKey: {}}, AfterSeq: 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var want []string
			for _, e := range all {
				if match(tc.filter, e) {
					want = append(want, e.ID)
				}
			}
			if len(want) < tc.least {
				t.Fatalf("the case is wrong: %d of the account's events match, want %d at least: %s", len(want), tc.least, fmtSystemEvents(all))
			}
			for _, limit := range []int{100, 2} {
				for _, bodiesOnly := range []bool{false, true} {
					f := tc.filter
					f.Limit, f.BodiesOnly = limit, bodiesOnly
					got := allEvents(t, s, "acme", f)
					if !slices.Equal(ids(got), want) && !(len(got) == 0 && len(want) == 0) {
						t.Errorf("FindEvents(%+v) = %v,\nwant %v", f, ids(got), want)
					}
				}
			}
		})
	}

	// The filter of the audit log API narrows a query as the oracle does.
	t.Run("Filter", func(t *testing.T) {
		t.Parallel()
		for _, lf := range []herald.Filter{
			{SystemEventType: herald.VerbDeleted},
			{SystemEventType: herald.VerbCreated, SystemEventMultipleTypes: []string{herald.VerbUpdated}},
			{SystemEventSources: map[string][]string{herald.SubjectEventType: {}}},
			{SystemEventMultipleTypes: []string{herald.VerbCreated, herald.VerbDeleted},
				SystemEventSources: map[string][]string{herald.SubjectAPIKey: {keys[0].ID, keys[1].ID}}},
		} {
			f := herald.EventFilter{Origin: herald.OriginSystem, Limit: 100}
			lf.ApplyTo(&f)
			var want []string
			for _, e := range all {
				if e.Origin == herald.OriginSystem && lf.Match(e) {
					want = append(want, e.ID)
				}
			}
			got := allEvents(t, s, "acme", f)
			if !slices.Equal(ids(got), want) || len(want) == 0 {
				t.Errorf("FindEvents with filter %+v = %v, want %v (not none)", lf, ids(got), want)
			}
		}
	})
}

// wantChangeTime checks that the system event e of a change made between
// start and end happened then: occurredAt and receivedAt are both the
// time of the change.
func wantChangeTime(t *testing.T, what string, e *herald.Event, start, end time.Time) {
	t.Helper()
	const slack = 5 * time.Second // for a store that takes the time from its database
	if e.OccurredAt.Before(start.Add(-slack)) || e.OccurredAt.After(end.Add(slack)) || !e.ReceivedAt.Equal(e.OccurredAt) {
		t.Errorf("%s: system event occurred at %s, received at %s; want both the time of the change, %s",
			what, e.OccurredAt.Format(time.RFC3339Nano), e.ReceivedAt.Format(time.RFC3339Nano), start.UTC().Format(time.RFC3339Nano))
	}
}

// wantSystemEvent checks that e is a system event of the account, about
// subject id of type category, with the verb typ, caused by by, whose
// data says so too, and that it is linked into the audit chain. It
// returns its data.
func wantSystemEvent(t *testing.T, what string, e *herald.Event, accountID, category, typ, id string, by herald.Actor) map[string]any {
	t.Helper()
	if e.Origin != herald.OriginSystem || e.Category != category || e.Type != typ || e.PrimaryID != id ||
		e.AgentID != by.ID || e.AgentType != by.Type || e.AccountID != accountID {
		t.Errorf("%s: system event = origin %q, %s/%s, primaryId %q, agent %q (%q), account %q;\n"+
			"want origin system, %s/%s, primaryId %q, agent %q (%q), account %q",
			what, e.Origin, e.Category, e.Type, e.PrimaryID, e.AgentID, e.AgentType, e.AccountID,
			category, typ, id, by.ID, by.Type, accountID)
	}
	if e.ChainHash == "" || !bytes.Contains(e.Body, []byte(`"hash":"`+e.ChainHash+`"`)) {
		t.Errorf("%s: system event %d has hash %q, body %s; want it chained, the hash in the body", what, e.Seq, e.ChainHash, e.Body)
	}
	d := dataOf(t, e)
	for name, want := range map[string]string{"subject_type": category, "subject_id": id, "verb": typ, "aid": accountID} {
		if d[name] != want {
			t.Errorf("%s: system event data.%s = %v, want %q (data %s)", what, name, d[name], want, e.Data)
		}
	}
	return d
}

// dataOf decodes the data of e.
func dataOf(t *testing.T, e *herald.Event) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatalf("event %d (%s/%s): data %s: %v", e.Seq, e.Category, e.Type, e.Data, err)
	}
	return d
}

// member returns the value at the JSON Pointer p (without escapes) in d.
func member(d map[string]any, p string) (any, bool) {
	var v any = d
	for _, name := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
	}
	return v, true
}

// wantMember checks that d holds want at the pointer p.
func wantMember(t *testing.T, what string, d map[string]any, p string, want any) {
	t.Helper()
	if v, ok := member(d, p); !ok || v != want {
		b, _ := json.Marshal(d)
		t.Errorf("%s: data%s = %v, want %v (data %s)", what, p, v, want, b)
	}
}

// fmtSystemEvents describes events briefly, for a failure message.
func fmtSystemEvents(events []*herald.Event) string {
	if len(events) == 0 {
		return "no events"
	}
	parts := make([]string, len(events))
	for i, e := range events {
		parts[i] = fmt.Sprintf("%d %s %s/%s %s", e.Seq, e.Origin, e.Category, e.Type, e.PrimaryID)
	}
	return strings.Join(parts, "; ")
}

// wantAuditVerified checks that the account's audit chain holds, over
// every system event it has.
func wantAuditVerified(t *testing.T, s Store, accountID string) *herald.AuditReport {
	t.Helper()
	r, err := s.VerifyAudit(t.Context(), accountID)
	if err != nil {
		t.Fatalf("VerifyAudit(%s): %v", accountID, err)
	}
	system := allEvents(t, s, accountID, herald.EventFilter{Origin: herald.OriginSystem})
	if !r.Verified || r.Break != nil || r.AccountID != accountID || r.Checked != int64(len(system)) {
		t.Errorf("VerifyAudit(%s) = %s; want verified, %d system events checked", accountID, fmtReport(r), len(system))
	}
	if n := len(system); n > 0 && (r.Head != system[n-1].ChainHash || r.LastSeq != system[n-1].Seq) {
		t.Errorf("VerifyAudit(%s) ends at seq %d, head %q; want the last system event's, seq %d, hash %q",
			accountID, r.LastSeq, r.Head, system[n-1].Seq, system[n-1].ChainHash)
	}
	return r
}

func fmtReport(r *herald.AuditReport) string {
	b, _ := json.Marshal(r)
	return string(b)
}
