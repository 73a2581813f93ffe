package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// testAudit checks the audit chain after changes of every kind and the
// journeys of a few customers: every system event is chained, the chain
// verifies over all of them and ends at the newest, and the bodies
// FindEvents serves are the ones it was computed over.
func testAudit(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	admin := herald.Actor{ID: "key_admin", Type: herald.AgentTypeAPIKey}
	ingest := herald.Actor{ID: "key_ingest", Type: herald.AgentTypeAPIKey}
	ctx := herald.NewContextWithActor(t.Context(), admin)
	newAccount(t, s, "acme")
	newAccount(t, s, "globex")
	t0 := baseTime.Add(time.Hour)
	after := func(d time.Duration) time.Time { return t0.Add(d) }

	k := newKey("acme", "ci", baseTime)
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	set := herald.DefaultSettings()
	set.Sessions.InactivityTimeout = herald.Duration(time.Minute)
	set.Visits.Timeout = herald.Duration(2 * time.Minute)
	if err := s.PutSettings(ctx, "acme", set); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	v1, v2 := payoutType("acme", baseTime), payoutType("acme", baseTime)
	v2.Description = "Second version."
	for _, et := range []*herald.EventType{v1, v2} {
		if _, err := s.PutEventType(ctx, et); err != nil {
			t.Fatalf("PutEventType: %v", err)
		}
	}
	// Refused changes and batches leave no trace in the chain.
	if err := s.CreateEventType(ctx, payoutType("acme", baseTime)); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Fatalf("CreateEventType(existing) = %v, want ECONFLICT", err)
	}
	res := appendBy(t, s, "acme", ingest,
		login(t, "in1", "C1", "", t0), login(t, "in2", "C2", "", t0), page(t, "p1", "C1", "", after(10*time.Second)))
	appendBy(t, s, "acme", ingest, logout(t, "out1", "C1", res[0].SessionID, after(20*time.Second)))
	failed := &herald.AppendBatch{AccountID: "acme", Atomic: true, By: ingest, Events: []*herald.Event{
		login(t, "in3", "C3", "", t0), page(t, "p1", "C9", "", t0),
	}}
	if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{failed}); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	if n, err := s.ExpireJourneys(t.Context(), after(time.Hour), 100); err != nil || n != 3 {
		t.Fatalf("ExpireJourneys = %d, %v; want C2's session and both visits ended", n, err)
	}
	if _, err := s.EraseProfile(ctx, "acme", "C2"); err != nil {
		t.Fatalf("EraseProfile: %v", err)
	}
	if err := s.DeleteKey(ctx, "acme", k.ID); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	appendBy(t, s, "acme", ingest, page(t, "p2", "", "", after(2*time.Hour)))

	// System events carry their link in the chain, in the column and
	// the body alike; client events have none.
	all := allEvents(t, s, "acme", herald.EventFilter{})
	var system []*herald.Event
	for _, e := range all {
		var body map[string]json.RawMessage
		if err := json.Unmarshal(e.Body, &body); err != nil {
			t.Fatalf("event %d: body %s: %v", e.Seq, e.Body, err)
		}
		var hash string
		_, has := body["hash"]
		if has {
			_ = json.Unmarshal(body["hash"], &hash)
		}
		if e.Origin != herald.OriginSystem {
			if has || e.ChainHash != "" {
				t.Errorf("client event %s has a hash: %q, body %s", e.ID, e.ChainHash, e.Body)
			}
			continue
		}
		system = append(system, e)
		if hash == "" || hash != e.ChainHash || len(hash) != 64 {
			t.Errorf("system event %d (%s/%s): hash %q, body hash %q; want the same SHA-256 hex in both", e.Seq, e.Category, e.Type, e.ChainHash, hash)
		}
	}
	// 2 of the account, 1 key, 1 settings, 2 types, 3 of each login,
	// 1 logout, 3 of the sweep, 1 erasure, 1 key deleted.
	if len(system) != 18 {
		t.Errorf("acme holds %d system events, want 18: %s", len(system), fmtSystemEvents(system))
	}
	r := wantAuditVerified(t, s, "acme")

	// The bodies FindEvents serves verify alone, as a client that holds
	// them would check them, and so do those it serves without decoding.
	for _, bodiesOnly := range []bool{false, true} {
		list := allEvents(t, s, "acme", herald.EventFilter{Origin: herald.OriginSystem, Limit: 7, BodiesOnly: bodiesOnly})
		v := herald.NewAuditVerifier("acme")
		for i, e := range list {
			row := herald.AuditRow{Seq: e.Seq, ID: e.ID, Body: e.Body}
			if bodiesOnly {
				row.Category, row.Type, row.PrimaryID = system[i].Category, system[i].Type, system[i].PrimaryID
			} else {
				row.Category, row.Type, row.PrimaryID = e.Category, e.Type, e.PrimaryID
			}
			if !v.Check(row) {
				break
			}
		}
		if own := v.Finish(r.Head); !own.Verified || own.Checked != r.Checked || own.Head != r.Head {
			t.Errorf("verifying the bodies FindEvents (BodiesOnly %t) serves: %s; want what VerifyAudit said, %s",
				bodiesOnly, fmtReport(own), fmtReport(r))
		}
	}

	// Each account has a chain of its own.
	if r := wantAuditVerified(t, s, "globex"); r.Checked != 2 {
		t.Errorf("VerifyAudit(globex) checked %d events, want its 2", r.Checked)
	}
	_, err := s.VerifyAudit(t.Context(), "nobody")
	wantCode(t, "VerifyAudit(unknown account)", err, herald.ENOTFOUND)
}

// testAuditFromTwoNodes has goroutines on two nodes change settings,
// create keys, append logins of new customers and sweep, all at once, in
// one account. Each writes system events; a store that chains them
// without holding the account's lock forks the chain. The chain must
// verify over every system event, and the seqs have no gaps.
func testAuditFromTwoNodes(t *testing.T, newDB NewDatabase) {
	open := newDB(t)
	nodes := []Store{open(), open()}
	newAccount(t, nodes[0], "acme")
	t0 := baseTime.Add(time.Hour)

	const (
		rounds          = 10
		appendersByNode = 2
		loginsPerCall   = 2
	)
	var swept atomic.Int64
	var funcs []func(context.Context) error
	for n, node := range nodes {
		actor := herald.Actor{ID: fmt.Sprintf("key_node%d", n), Type: herald.AgentTypeAPIKey}
		funcs = append(funcs, func(ctx context.Context) error {
			ctx = herald.NewContextWithActor(ctx, actor)
			for i := range rounds {
				set := herald.DefaultSettings()
				set.Visits.Timeout = herald.Duration(time.Duration(n*rounds+i+1) * time.Minute)
				if err := node.PutSettings(ctx, "acme", set); err != nil {
					return fmt.Errorf("node %d: PutSettings %d: %w", n, i, err)
				}
			}
			return nil
		})
		keys := make([]*herald.APIKey, rounds)
		for i := range keys {
			keys[i] = newKey("acme", fmt.Sprintf("node%d-%d", n, i), baseTime)
		}
		funcs = append(funcs, func(ctx context.Context) error {
			ctx = herald.NewContextWithActor(ctx, actor)
			for i, k := range keys {
				if err := node.CreateKey(ctx, k); err != nil {
					return fmt.Errorf("node %d: CreateKey %d: %w", n, i, err)
				}
			}
			return nil
		})
		for w := range appendersByNode {
			var calls [][]*herald.AppendBatch
			for c := range rounds {
				b := &herald.AppendBatch{AccountID: "acme", By: actor}
				for i := range loginsPerCall {
					id := fmt.Sprintf("n%d-w%d-c%d-%d", n, w, c, i)
					b.Events = append(b.Events, login(t, id, "C-"+id, "", t0))
				}
				calls = append(calls, []*herald.AppendBatch{b})
			}
			writer := &raceWriter{name: fmt.Sprintf("node %d writer %d", n, w), node: node, calls: calls}
			funcs = append(funcs, writer.run)
		}
		funcs = append(funcs, func(ctx context.Context) error {
			for range rounds {
				k, err := node.ExpireJourneys(ctx, t0.Add(time.Hour), 5)
				if err != nil {
					return fmt.Errorf("node %d: ExpireJourneys: %w", n, err)
				}
				swept.Add(int64(k))
			}
			return nil
		})
	}

	runConcurrently(t, funcs)

	all := storedEvents(t, nodes[0], "acme", 0, int(lastSeq(t, nodes[0], "acme")))
	var system int64
	for _, e := range all {
		if e.Origin == herald.OriginSystem {
			system++
		}
	}
	// The account's 2, a settings update and a key per round and node,
	// 3 for each login (entity created, visit and session started), and
	// one for each session or visit swept.
	logins := int64(len(nodes) * appendersByNode * rounds * loginsPerCall)
	if want := 2 + int64(2*len(nodes)*rounds) + 3*logins + swept.Load(); system != want {
		t.Errorf("acme holds %d system events, want %d", system, want)
	}
	for _, node := range nodes {
		wantAuditVerified(t, node, "acme")
	}
}
