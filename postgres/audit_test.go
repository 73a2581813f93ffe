package postgres_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/postgres"
)

// exec runs one statement on dbURL, outside any store: what someone with
// access to the database could do behind Herald's back.
func exec(t *testing.T, dbURL, sql string, args ...any) int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	tag, err := conn.Exec(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return tag.RowsAffected()
}

// systemEvents returns the account's system events, in seq order.
func systemEvents(t *testing.T, s *postgres.Store, accountID string, f herald.EventFilter) []*herald.Event {
	t.Helper()
	f.Origin, f.Limit = herald.OriginSystem, 500
	var all []*herald.Event
	for {
		page, err := s.FindEvents(t.Context(), accountID, f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < f.Limit {
			return all
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
}

// audited sets up an account with a few system events: account created,
// apikey created (its first key), settings updated, apikey created.
func audited(t *testing.T, s *postgres.Store, accountID string) {
	t.Helper()
	ctx := herald.NewContextWithActor(t.Context(), herald.Actor{ID: "k1-" + accountID, Type: herald.AgentTypeAPIKey})
	first := &herald.APIKey{ID: "k1-" + accountID, AccountID: accountID, Hash: "h1-" + accountID, Scopes: []string{herald.ScopeAdmin}, CreatedAt: trackTime}
	if err := s.CreateAccount(ctx, &herald.Account{ID: accountID, CreatedAt: trackTime}, first); err != nil {
		t.Fatal(err)
	}
	set := herald.DefaultSettings()
	set.UnknownTypes = herald.UnknownTypesReject
	if err := s.PutSettings(ctx, accountID, set); err != nil {
		t.Fatal(err)
	}
	second := &herald.APIKey{ID: "k2-" + accountID, AccountID: accountID, Hash: "h2-" + accountID, Scopes: []string{herald.ScopeRead}, CreatedAt: trackTime}
	if err := s.CreateKey(ctx, second); err != nil {
		t.Fatal(err)
	}
	// An event of the API between them takes a seq too.
	b := &herald.AppendBatch{AccountID: accountID, Events: []*herald.Event{parsed(t, nil, `{"id":"api-1","category":"c","type":"t"}`)}}
	if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil || b.Results[0].Err != nil {
		t.Fatalf("AppendEvents: %v %+v", err, b.Results)
	}

	got := systemEvents(t, s, accountID, herald.EventFilter{})
	var names []string
	for _, e := range got {
		names = append(names, fmt.Sprintf("%d %s/%s %s by %s", e.Seq, e.Category, e.Type, e.PrimaryID, e.AgentID))
	}
	want := []string{
		"1 account/created " + accountID + " by k1-" + accountID,
		"2 apikey/created k1-" + accountID + " by k1-" + accountID,
		"3 settings/updated " + accountID + " by k1-" + accountID,
		"4 apikey/created k2-" + accountID + " by k1-" + accountID,
	}
	if !slices.Equal(names, want) {
		t.Fatalf("system events:\n%q\nwant\n%q", names, want)
	}
	r, err := s.VerifyAudit(t.Context(), accountID)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified || r.Checked != 4 || r.LastSeq != 4 || r.Head != got[3].ChainHash || r.Break != nil {
		t.Fatalf("VerifyAudit before tampering = %+v, want verified, 4 checked up to seq 4", r)
	}
}

// A system event changed in the database, or the newest one removed,
// breaks the chain there.
func TestAuditTampering(t *testing.T) {
	t.Parallel()
	dbURL := newSchema(t)
	s := open(t, dbURL)

	t.Run("changed", func(t *testing.T) {
		audited(t, s, "acme")
		settings := systemEvents(t, s, "acme", herald.EventFilter{Category: herald.SubjectSettings})[0]
		var members map[string]json.RawMessage
		if err := json.Unmarshal(settings.Body, &members); err != nil {
			t.Fatal(err)
		}
		var data map[string]any
		if err := json.Unmarshal(members["data"], &data); err != nil {
			t.Fatal(err)
		}
		if after := data["after"].(map[string]any); after["unknownTypes"] != herald.UnknownTypesReject {
			t.Fatalf("settings updated event: data %v, want after.unknownTypes %q", data, herald.UnknownTypesReject)
		}
		data["after"] = map[string]any{"unknownTypes": herald.UnknownTypesAccept}
		members["data"], _ = json.Marshal(data)
		body, _ := json.Marshal(members)
		if n := exec(t, dbURL, `UPDATE events SET body = $3 WHERE account_id = $1 AND seq = $2`, "acme", settings.Seq, body); n != 1 {
			t.Fatalf("updated %d rows", n)
		}

		r, err := s.VerifyAudit(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if r.Verified || r.Break == nil || r.Break.Seq != settings.Seq || r.Break.ID != settings.ID || r.Checked != 2 {
			t.Fatalf("VerifyAudit after changing seq %d = %+v (break %+v), want a break there", settings.Seq, r, r.Break)
		}
		if r.Break.Stored != settings.ChainHash || r.Break.Computed == "" || r.Break.Computed == r.Break.Stored {
			t.Errorf("break %+v: want the stored hash %s and another computed", r.Break, settings.ChainHash)
		}
	})

	t.Run("newest removed", func(t *testing.T) {
		audited(t, s, "globex")
		if n := exec(t, dbURL, `DELETE FROM events WHERE account_id = $1 AND seq = 4`, "globex"); n != 1 {
			t.Fatalf("deleted %d rows", n)
		}
		r, err := s.VerifyAudit(t.Context(), "globex")
		if err != nil {
			t.Fatal(err)
		}
		if r.Verified || r.Break == nil || r.Checked != 3 || r.Break.Seq != 3 {
			t.Fatalf("VerifyAudit after removing the newest = %+v (break %+v), want a break after seq 3", r, r.Break)
		}
	})

	t.Run("column changed", func(t *testing.T) {
		audited(t, s, "initech")
		// The body is intact, but queries filter by the columns.
		exec(t, dbURL, `UPDATE events SET primary_id = 'other' WHERE account_id = $1 AND seq = 2`, "initech")
		r, err := s.VerifyAudit(t.Context(), "initech")
		if err != nil {
			t.Fatal(err)
		}
		if r.Verified || r.Break == nil || r.Break.Seq != 2 {
			t.Fatalf("VerifyAudit after changing a column = %+v (break %+v), want a break at seq 2", r, r.Break)
		}
	})

	if _, err := s.VerifyAudit(t.Context(), "nobody"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("VerifyAudit(unknown account): %v, want ENOTFOUND", err)
	}
}

// The audit log's filters: verbs, and subject types with their ids.
func TestFindSystemEventsBySource(t *testing.T) {
	t.Parallel()
	s := open(t, newSchema(t))
	audited(t, s, "acme")
	for _, c := range []struct {
		name string
		f    herald.EventFilter
		want []int64
	}{
		{"verb", herald.EventFilter{Types: []string{herald.VerbUpdated}}, []int64{3}},
		{"verbs", herald.EventFilter{Types: []string{herald.VerbUpdated, herald.VerbCreated}}, []int64{1, 2, 3, 4}},
		{"subject type", herald.EventFilter{Sources: map[string][]string{herald.SubjectAPIKey: {}}}, []int64{2, 4}},
		{"subject", herald.EventFilter{Sources: map[string][]string{herald.SubjectAPIKey: {"k2-acme"}}}, []int64{4}},
		{"subjects", herald.EventFilter{Sources: map[string][]string{
			herald.SubjectAPIKey: {"k2-acme", "nope"}, herald.SubjectAccount: {},
		}}, []int64{1, 4}},
		{"verb and subject type", herald.EventFilter{
			Types: []string{herald.VerbCreated}, Sources: map[string][]string{herald.SubjectSettings: {}},
		}, nil},
		{"text PostgreSQL cannot hold", herald.EventFilter{Types: []string{"a\x00"}}, nil},
		{"subject PostgreSQL cannot hold", herald.EventFilter{Sources: map[string][]string{herald.SubjectAPIKey: {"\xff"}}}, nil},
	} {
		var got []int64
		for _, e := range systemEvents(t, s, "acme", c.f) {
			got = append(got, e.Seq)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: seqs %v, want %v", c.name, got, c.want)
		}
	}
}

// login returns a login event of the entity at the given time.
func login(t *testing.T, id, entity string, at time.Time) *herald.Event {
	t.Helper()
	e, err := herald.ParseEvent([]byte(`{"id":"` + id + `","category":"authentication","type":"userLoggedIn","coreCustomerId":"` + entity + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	e.Complete(at, herald.OriginAPI, nil)
	return e
}

// Two nodes sweeping the same expired sessions and visits at once end each
// exactly once.
func TestExpireFromTwoNodes(t *testing.T) {
	t.Parallel()
	dbURL := newSchema(t)
	nodes := []*postgres.Store{open(t, dbURL), open(t, dbURL)}
	const perAccount = 30
	accounts := []string{"acme", "globex"}
	for _, a := range accounts {
		newAccount(t, nodes[0], a)
		var events []*herald.Event
		for i := range perAccount {
			events = append(events, login(t, fmt.Sprintf("login-%d", i), fmt.Sprintf("C%d", i), trackTime))
		}
		b := &herald.AppendBatch{AccountID: a, Events: events}
		if err := nodes[0].AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil {
			t.Fatal(err)
		}
		for i, r := range b.Results {
			if r.Err != nil || r.SessionID == "" {
				t.Fatalf("login %d: %+v, want stored with a session", i, r)
			}
		}
	}

	now := trackTime.Add(13 * time.Hour)
	const sweepers = 6
	ended := make([]int, sweepers)
	errs := make([]error, sweepers)
	var wg sync.WaitGroup
	for w := range sweepers {
		wg.Go(func() {
			for {
				n, err := nodes[w%2].ExpireJourneys(t.Context(), now, 7)
				if err != nil {
					errs[w] = err
					return
				}
				if n == 0 {
					return
				}
				ended[w] += n
			}
		})
	}
	wg.Wait()
	total := 0
	for w := range sweepers {
		if errs[w] != nil {
			t.Fatalf("sweeper %d: %v", w, errs[w])
		}
		total += ended[w]
	}
	if n, err := nodes[0].ExpireJourneys(t.Context(), now, 100); err != nil || n != 0 {
		t.Errorf("ExpireJourneys after the sweep = %d, %v; want nothing left", n, err)
	}
	want := len(accounts) * perAccount * 2
	if total != want {
		t.Errorf("the sweepers ended %d sessions and visits, want %d (%v)", total, want, ended)
	}
	for _, a := range accounts {
		terminated := systemEvents(t, nodes[1], a, herald.EventFilter{Category: herald.SubjectSession, Type: herald.VerbTerminated})
		visitsEnded := systemEvents(t, nodes[1], a, herald.EventFilter{Category: herald.SubjectVisit, Type: herald.VerbEnded})
		if len(terminated) != perAccount || len(visitsEnded) != perAccount {
			t.Errorf("%s: %d session terminated and %d visit ended events, want %d of each",
				a, len(terminated), len(visitsEnded), perAccount)
		}
		seen := map[string]bool{}
		for _, e := range append(terminated, visitsEnded...) {
			if seen[e.PrimaryID] {
				t.Errorf("%s: %s %s ended twice", a, e.Category, e.PrimaryID)
			}
			seen[e.PrimaryID] = true
		}
		open, err := nodes[1].FindSessions(t.Context(), a, herald.JourneyFilter{State: herald.JourneyOpen, Limit: 100})
		if err != nil || len(open) != 0 {
			t.Errorf("%s: %d open sessions, %v; want none", a, len(open), err)
		}
		closed, err := nodes[1].FindVisits(t.Context(), a, herald.JourneyFilter{State: herald.JourneyClosed, Limit: 100})
		if err != nil || len(closed) != perAccount {
			t.Errorf("%s: %d closed visits, %v; want %d", a, len(closed), err, perAccount)
		}
		for _, v := range closed {
			if v.EndReason != herald.EndTimeout || !v.ExpiresAt.IsZero() || v.EndedAt == nil ||
				!v.EndedAt.Equal(trackTime.Add(herald.DefaultVisitTimeout)) {
				t.Errorf("%s: visit %+v, want ended by timeout at %s", a, v, trackTime.Add(herald.DefaultVisitTimeout))
			}
		}
		r, err := nodes[0].VerifyAudit(t.Context(), a)
		if err != nil || !r.Verified {
			t.Errorf("%s: VerifyAudit = %+v, %v; want verified", a, r, err)
		}
	}
}

// API changes and appends from two nodes at once keep one chain: every
// system event takes the account's next seq and links to the one before.
func TestChangesAndAppendsFromTwoNodes(t *testing.T) {
	t.Parallel()
	dbURL := newSchema(t)
	nodes := []*postgres.Store{open(t, dbURL), open(t, dbURL)}
	newAccount(t, nodes[0], "acme")
	ctx := herald.NewContextWithActor(t.Context(), herald.Actor{ID: "admin", Type: herald.AgentTypeAPIKey})

	const rounds = 15
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for n := range 2 {
		s := nodes[n]
		wg.Go(func() { // settings and keys
			for i := range rounds {
				set := herald.DefaultSettings()
				set.Visits.Timeout = herald.Duration(time.Duration(i+1) * time.Minute)
				if err := s.PutSettings(ctx, "acme", set); err != nil {
					errs <- fmt.Errorf("PutSettings: %w", err)
					return
				}
				id := fmt.Sprintf("k-%d-%d", n, i)
				if err := s.CreateKey(ctx, &herald.APIKey{ID: id, AccountID: "acme", Hash: id, CreatedAt: trackTime}); err != nil {
					errs <- fmt.Errorf("CreateKey: %w", err)
					return
				}
				if i%2 == 0 {
					if err := s.DeleteKey(ctx, "acme", id); err != nil {
						errs <- fmt.Errorf("DeleteKey: %w", err)
						return
					}
				}
			}
		})
		wg.Go(func() { // event types
			for i := range rounds {
				et := &herald.EventType{AccountID: "acme", Category: "c", Type: fmt.Sprintf("t%d", i%3), Description: fmt.Sprint(n, i)}
				if _, err := s.PutEventType(ctx, et); err != nil {
					errs <- fmt.Errorf("PutEventType: %w", err)
					return
				}
				if i%4 == 3 {
					if err := s.DeleteEventType(ctx, "acme", "c", et.Type); err != nil && herald.ErrorCode(err) != herald.ENOTFOUND {
						errs <- fmt.Errorf("DeleteEventType: %w", err)
						return
					}
				}
			}
		})
		wg.Go(func() { // appends that start profiles, sessions and visits
			for i := range rounds {
				e := login(t, fmt.Sprintf("login-%d-%d", n, i), fmt.Sprintf("C%d", i%4), trackTime.Add(time.Duration(i)*time.Hour))
				b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{e}}
				if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil {
					errs <- fmt.Errorf("AppendEvents: %w", err)
					return
				}
				if b.Results[0].Err != nil {
					errs <- fmt.Errorf("AppendEvents: %w", b.Results[0].Err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	all, err := nodes[0].FindEvents(t.Context(), "acme", herald.EventFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var system int64
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: seqs have a gap", i, e.Seq)
		}
		if e.Origin == herald.OriginSystem {
			system++
		}
	}
	r, err := nodes[1].VerifyAudit(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified || r.Checked != system {
		t.Errorf("VerifyAudit = %+v (break %+v), want verified with %d checked", r, r.Break, system)
	}
	// 2 nodes × (settings + key + half a deletion) + account created.
	if min := int64(2*rounds*2 + 1); system < min {
		t.Errorf("%d system events, want at least %d", system, min)
	}
}
