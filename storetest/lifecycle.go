package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// sec is baseTime plus n seconds: occurredAt values that are easy to read.
func sec(n int) time.Time { return baseTime.Add(time.Duration(n) * time.Second) }

func testLifecycles(t *testing.T, newDB NewDatabase) {
	login := builtinType(t, "authentication", "login")
	transaction := builtinType(t, "transactions", "transaction")

	t.Run("AttemptedThenSucceeded", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		r1, r2 := baseTime.Add(time.Minute), baseTime.Add(2*time.Minute)
		appendOne(t, s, "acme", typedEvent(t, login, map[string]any{
			"id": "att", "eventStatus": "attempted", "coreCustomerId": "C1", "occurredAt": sec(0),
			"data": map[string]any{"external_login_id": "L1", "ip_address": "10.0.0.1", "login_method": "password"},
		}, r1))
		// An event of no lifecycle in between: it must not count.
		appendOne(t, s, "acme", loginEvent(t, "other", "x", r1))
		appendOne(t, s, "acme", typedEvent(t, login, map[string]any{
			"id": "ok", "eventStatus": "succeeded", "coreCustomerId": "C1", "occurredAt": sec(5),
			"data": map[string]any{"external_login_id": "L1", "ip_address": "10.0.0.2", "device_id": "d-1"},
		}, r2))

		wantLifecycle(t, "FindLifecycle(L1)", findLifecycle(t, s, "acme", "L1"), &herald.Lifecycle{
			ID: "L1", AccountID: "acme", Category: "authentication", Type: "login",
			Status: "succeeded", Terminal: true, EntityID: "C1",
			History: []herald.LifecycleStep{
				{Status: "attempted", EventID: "att", Seq: base + 1, OccurredAt: sec(0)},
				{Status: "succeeded", Terminal: true, EventID: "ok", Seq: base + 3, OccurredAt: sec(5)},
			},
			Data:       json.RawMessage(`{"external_login_id":"L1","ip_address":"10.0.0.2","login_method":"password","device_id":"d-1"}`),
			EventCount: 2, FirstOccurredAt: sec(0), LastOccurredAt: sec(5), FirstSeq: base + 1, LastSeq: base + 3, UpdatedAt: r2,
		})
		_, err := s.FindLifecycle(t.Context(), "acme", "L2")
		wantCode(t, "FindLifecycle(unknown id)", err, herald.ENOTFOUND)
		newAccount(t, s, "globex")
		_, err = s.FindLifecycle(t.Context(), "globex", "L1")
		wantCode(t, "FindLifecycle(another account's lifecycle)", err, herald.ENOTFOUND)
	})

	t.Run("OneCall", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		// Both events in one call, the later first: the second must see
		// what the first did to the lifecycle before it was written.
		appendOne(t, s, "acme",
			typedEvent(t, login, map[string]any{
				"id": "ok", "eventStatus": "succeeded", "agentId": "C1", "agentType": "customer", "occurredAt": sec(5),
				"data": map[string]any{"external_login_id": "L1"},
			}, now),
			typedEvent(t, login, map[string]any{
				"id": "att", "eventStatus": "attempted", "agentId": "C1", "agentType": "customer", "occurredAt": sec(0),
				"data": map[string]any{"external_login_id": "L1", "login_method": "otp"},
			}, now))
		wantLifecycle(t, "FindLifecycle(L1)", findLifecycle(t, s, "acme", "L1"), &herald.Lifecycle{
			ID: "L1", AccountID: "acme", Category: "authentication", Type: "login",
			Status: "succeeded", Terminal: true, EntityID: "C1",
			History: []herald.LifecycleStep{
				{Status: "attempted", EventID: "att", Seq: base + 2, OccurredAt: sec(0)},
				{Status: "succeeded", Terminal: true, EventID: "ok", Seq: base + 1, OccurredAt: sec(5)},
			},
			Data:       json.RawMessage(`{"external_login_id":"L1","login_method":"otp"}`),
			EventCount: 2, FirstOccurredAt: sec(0), LastOccurredAt: sec(5), FirstSeq: base + 1, LastSeq: base + 2, UpdatedAt: now,
		})
	})

	t.Run("OutOfOrder", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		r1, r2 := baseTime.Add(time.Minute), baseTime.Add(2*time.Minute)
		// The outcome arrives first; the attempt, which occurred earlier,
		// arrives later with older values of fields both have.
		appendOne(t, s, "acme", typedEvent(t, login, map[string]any{
			"id": "ok", "eventStatus": "succeeded", "coreCustomerId": "C1", "occurredAt": sec(5),
			"data": map[string]any{"external_login_id": "L1", "ip_address": "new", "status": "done"},
		}, r1))
		appendOne(t, s, "acme", typedEvent(t, login, map[string]any{
			"id": "att", "eventStatus": "attempted", "coreCustomerId": "C1", "occurredAt": sec(0),
			"data": map[string]any{"external_login_id": "L1", "ip_address": "old", "status": "started", "login_method": "password"},
		}, r2))
		wantLifecycle(t, "FindLifecycle(L1)", findLifecycle(t, s, "acme", "L1"), &herald.Lifecycle{
			ID: "L1", AccountID: "acme", Category: "authentication", Type: "login",
			Status: "succeeded", Terminal: true, EntityID: "C1",
			History: []herald.LifecycleStep{
				{Status: "attempted", EventID: "att", Seq: base + 2, OccurredAt: sec(0)},
				{Status: "succeeded", Terminal: true, EventID: "ok", Seq: base + 1, OccurredAt: sec(5)},
			},
			Data:       json.RawMessage(`{"external_login_id":"L1","ip_address":"new","status":"done","login_method":"password"}`),
			EventCount: 2, FirstOccurredAt: sec(0), LastOccurredAt: sec(5), FirstSeq: base + 1, LastSeq: base + 2, UpdatedAt: r2,
		})
	})

	t.Run("SameOccurredAt", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		job := jobType("acme")
		// Ties on occurredAt are broken by seq: the later stored wins.
		appendOne(t, s, "acme", typedEvent(t, job, map[string]any{
			"id": "j1", "eventLifecycleId": "J", "eventStatus": "queued", "occurredAt": sec(0), "data": map[string]any{"v": 1},
		}, now))
		appendOne(t, s, "acme", typedEvent(t, job, map[string]any{
			"id": "j2", "eventLifecycleId": "J", "eventStatus": "running", "occurredAt": sec(0), "data": map[string]any{"v": 2},
		}, now))
		l := findLifecycle(t, s, "acme", "J")
		if l.Status != "running" || !jsonEqual(l.Data, json.RawMessage(`{"v":2}`)) || len(l.History) != 2 || l.History[1].EventID != "j2" {
			t.Errorf("lifecycle J = status %q data %s history %+v; want running, {\"v\":2}, j2 last", l.Status, l.Data, l.History)
		}
	})

	t.Run("TerminalIsSticky", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		job := jobType("acme") // no transitions: any order is allowed
		now := baseTime.Add(time.Minute)
		ev := func(id, status string, at time.Time) *herald.Event {
			return typedEvent(t, job, map[string]any{
				"id": id, "eventLifecycleId": "J", "eventStatus": status, "occurredAt": at, "data": map[string]any{"step": id},
			}, now)
		}
		step := func(status string, terminal bool, id string, seq int64, at time.Time) herald.LifecycleStep {
			return herald.LifecycleStep{Status: status, Terminal: terminal, EventID: id, Seq: base + seq, OccurredAt: at}
		}
		for _, tc := range []struct {
			event    *herald.Event
			status   string
			terminal bool
			history  []herald.LifecycleStep
		}{
			{ev("q", "queued", sec(0)), "queued", false, []herald.LifecycleStep{
				step("queued", false, "q", 1, sec(0)),
			}},
			{ev("r", "running", sec(20)), "running", false, []herald.LifecycleStep{
				step("queued", false, "q", 1, sec(0)), step("running", false, "r", 2, sec(20)),
			}},
			// Done occurred before running but arrives after it: terminal,
			// it becomes the status though running is later.
			{ev("d", "done", sec(10)), "done", true, []herald.LifecycleStep{
				step("queued", false, "q", 1, sec(0)), step("done", true, "d", 3, sec(10)), step("running", false, "r", 2, sec(20)),
			}},
			// A later non-terminal status joins the history only.
			{ev("r2", "running", sec(30)), "done", true, []herald.LifecycleStep{
				step("queued", false, "q", 1, sec(0)), step("done", true, "d", 3, sec(10)), step("running", false, "r", 2, sec(20)),
				step("running", false, "r2", 4, sec(30)),
			}},
			// A later terminal status replaces an earlier one.
			{ev("f", "failed", sec(40)), "failed", true, []herald.LifecycleStep{
				step("queued", false, "q", 1, sec(0)), step("done", true, "d", 3, sec(10)), step("running", false, "r", 2, sec(20)),
				step("running", false, "r2", 4, sec(30)), step("failed", true, "f", 5, sec(40)),
			}},
			// An earlier terminal status does not.
			{ev("d0", "done", sec(5)), "failed", true, []herald.LifecycleStep{
				step("queued", false, "q", 1, sec(0)), step("done", true, "d0", 6, sec(5)), step("done", true, "d", 3, sec(10)),
				step("running", false, "r", 2, sec(20)), step("running", false, "r2", 4, sec(30)), step("failed", true, "f", 5, sec(40)),
			}},
		} {
			id := tc.event.ID
			wantStored(t, id, appendOne(t, s, "acme", tc.event)[0], base+int64(len(tc.history)), now)
			l := findLifecycle(t, s, "acme", "J")
			if l.Status != tc.status || l.Terminal != tc.terminal || !sameHistory(l.History, tc.history) {
				t.Errorf("after %s: status %q terminal %t history\n\t%s\nwant %q terminal %t history\n\t%s",
					id, l.Status, l.Terminal, fmtHistory(l.History), tc.status, tc.terminal, fmtHistory(tc.history))
			}
		}
	})

	t.Run("TransitionRefused", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		tx := func(id, status, txID, customer string, at time.Time) *herald.Event {
			return typedEvent(t, transaction, map[string]any{
				"id": id, "eventStatus": status, "coreCustomerId": customer, "occurredAt": at,
				"data": map[string]any{"external_transaction_id": txID, "amount": "12.50", "currency": "EUR", "status": id},
			}, now)
		}
		appendOne(t, s, "acme", tx("t1", "pending", "T1", "C1", sec(0)), tx("t2", "approved", "T1", "C1", sec(10)))
		lifeBefore := findLifecycle(t, s, "acme", "T1")
		profileBefore := findProfile(t, s, "acme", "C1")

		res := appendOne(t, s, "acme",
			// Pending may not follow approved, which is terminal.
			tx("late", "pending", "T1", "C1", sec(20)),
			tx("next", "pending", "T2", "C1", sec(20)),
			// Denied may not come before approved: after denied comes
			// nothing.
			tx("early", "denied", "T1", "C1", sec(5)),
			// Pending before approved is allowed, out of order as it is.
			tx("first", "pending", "T1", "C1", sec(1)),
		)
		wantRefused(t, "late pending after approved", res[0], "/eventStatus")
		wantStored(t, "next, after the refused event", res[1], base+3, now)
		wantRefused(t, "early denied before approved", res[2], "/eventStatus")
		wantStored(t, "first, after the refused event", res[3], base+4, now)
		for _, id := range []string{"late", "early"} {
			_, err := s.FindEventByID(t.Context(), "acme", id)
			wantCode(t, "FindEventByID(refused "+id+")", err, herald.ENOTFOUND)
		}
		wantSeqs(t, s, "acme", base, []string{"t1", "t2", "next", "first"})

		// T1 has gained first and nothing else; the refused events did
		// not count towards the profile either.
		want := lifeBefore
		want.History = slices.Insert(slices.Clone(want.History), 1,
			herald.LifecycleStep{Status: "pending", EventID: "first", Seq: base + 4, OccurredAt: sec(1)})
		want.EventCount, want.LastSeq = 3, base+4
		wantLifecycle(t, "T1 after refusals", findLifecycle(t, s, "acme", "T1"), want)
		profile := findProfile(t, s, "acme", "C1")
		if profile.EventCount != profileBefore.EventCount+2 || profile.Counts["transactions/transaction"] != 4 {
			t.Errorf("profile C1 after refusals: eventCount %d, counts %v; want %d events, 4 transactions",
				profile.EventCount, profile.Counts, profileBefore.EventCount+2)
		}
	})

	t.Run("AtomicBatchRefusedByLifecycle", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		tx := func(id, status, txID, customer string, at time.Time) *herald.Event {
			return typedEvent(t, transaction, map[string]any{
				"id": id, "eventStatus": status, "coreCustomerId": customer, "occurredAt": at,
				"data": map[string]any{"external_transaction_id": txID, "amount": "1.00", "currency": "EUR", "merchant": map[string]any{"name": id}},
			}, now)
		}
		appendOne(t, s, "acme", tx("t1", "pending", "T1", "C1", sec(0)), tx("t2", "approved", "T1", "C1", sec(10)))
		lifeBefore := findLifecycle(t, s, "acme", "T1")
		profileBefore := findProfile(t, s, "acme", "C1")

		// Before the refused event, the batch changes T1, starts T2 and
		// profile C9 and updates profile C1: all of it must be undone.
		b := &herald.AppendBatch{AccountID: "acme", Atomic: true, Events: []*herald.Event{
			tx("a1", "pending", "T2", "C1", sec(20)),
			tx("a2", "pending", "T1", "C9", sec(5)),
			tx("a3", "approved", "T2", "C1", sec(21)),
			tx("bad", "pending", "T1", "C1", sec(30)),
			tx("a5", "failed", "T3", "C1", sec(30)),
		}}
		if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil {
			t.Fatalf("AppendEvents: %v", err)
		}
		wantRefused(t, "bad", b.Results[3], "/eventStatus")
		for _, i := range []int{0, 1, 2, 4} {
			wantConflict(t, b.Events[i].ID+" of the failed atomic batch", b.Results[i], "bad")
			if b.Results[i].Seq != 0 {
				t.Errorf("%s of the failed atomic batch: seq %d, want none", b.Events[i].ID, b.Results[i].Seq)
			}
		}
		wantSeqs(t, s, "acme", base, []string{"t1", "t2"})
		wantLifecycle(t, "T1 after the failed batch", findLifecycle(t, s, "acme", "T1"), lifeBefore)
		wantProfile(t, "C1 after the failed batch", findProfile(t, s, "acme", "C1"), profileBefore)
		for _, id := range []string{"T2", "T3"} {
			_, err := s.FindLifecycle(t.Context(), "acme", id)
			wantCode(t, "FindLifecycle("+id+" of the failed batch)", err, herald.ENOTFOUND)
		}
		_, err := s.FindProfile(t.Context(), "acme", "C9")
		wantCode(t, "FindProfile(C9 of the failed batch)", err, herald.ENOTFOUND)

		// No seq was consumed.
		res := appendOne(t, s, "acme", tx("after", "pending", "T2", "C1", sec(20)))
		wantStored(t, "after the failed batch", res[0], base+3, now)
	})

	t.Run("TypeMismatch", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		appendOne(t, s, "acme", typedEvent(t, login, map[string]any{
			"id": "att", "eventStatus": "attempted", "coreCustomerId": "C1", "occurredAt": sec(0),
			"data": map[string]any{"external_login_id": "L1"},
		}, now))
		before := findLifecycle(t, s, "acme", "L1")

		res := appendOne(t, s, "acme",
			// Registered, other type, same lifecycle id.
			typedEvent(t, transaction, map[string]any{
				"id": "tx", "eventStatus": "pending", "eventLifecycleId": "L1", "coreCustomerId": "C1", "occurredAt": sec(1),
				"data": map[string]any{"external_transaction_id": "X", "amount": "1", "currency": "EUR"},
			}, now),
			// Same type name, other category, unregistered.
			event(t, map[string]any{
				"id": "cat", "category": "other", "type": "login", "eventLifecycleId": "L1", "coreCustomerId": "C1",
				"occurredAt": sec(2).Format(time.RFC3339Nano),
			}, now),
			typedEvent(t, login, map[string]any{
				"id": "ok", "eventStatus": "succeeded", "coreCustomerId": "C1", "occurredAt": sec(3),
				"data": map[string]any{"external_login_id": "L1"},
			}, now),
		)
		wantRefused(t, "transaction joining a login lifecycle", res[0], "/eventLifecycleId")
		wantRefused(t, "other/login joining an authentication/login lifecycle", res[1], "/eventLifecycleId")
		wantStored(t, "ok", res[2], base+2, now)
		l := findLifecycle(t, s, "acme", "L1")
		if l.Category != before.Category || l.Type != before.Type || l.EventCount != 2 || l.Status != "succeeded" {
			t.Errorf("L1 = %s/%s, %d events, status %q; want authentication/login, 2 events, succeeded",
				l.Category, l.Type, l.EventCount, l.Status)
		}
	})

	t.Run("NoStatusAndUnregisteredTypes", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		appendOne(t, s, "acme",
			event(t, map[string]any{
				"id": "n1", "category": "custom", "type": "thing", "eventLifecycleId": "X1",
				"occurredAt": sec(0).Format(time.RFC3339Nano), "data": map[string]any{"a": 1},
			}, now),
			event(t, map[string]any{
				"id": "s1", "category": "custom", "type": "thing", "eventLifecycleId": "X2", "eventStatus": "anything",
				"occurredAt": sec(0).Format(time.RFC3339Nano),
			}, now))
		// A lifecycle whose events have no status has none; the status of
		// an unregistered type is never terminal.
		wantLifecycle(t, "X1", findLifecycle(t, s, "acme", "X1"), &herald.Lifecycle{
			ID: "X1", AccountID: "acme", Category: "custom", Type: "thing", History: []herald.LifecycleStep{},
			Data: json.RawMessage(`{"a":1}`), EventCount: 1, FirstOccurredAt: sec(0), LastOccurredAt: sec(0),
			FirstSeq: base + 1, LastSeq: base + 1, UpdatedAt: now,
		})
		wantLifecycle(t, "X2", findLifecycle(t, s, "acme", "X2"), &herald.Lifecycle{
			ID: "X2", AccountID: "acme", Category: "custom", Type: "thing", Status: "anything",
			History:    []herald.LifecycleStep{{Status: "anything", EventID: "s1", Seq: base + 2, OccurredAt: sec(0)}},
			EventCount: 1, FirstOccurredAt: sec(0), LastOccurredAt: sec(0), FirstSeq: base + 2, LastSeq: base + 2, UpdatedAt: now,
		})
	})

	t.Run("DuplicateCountsOnce", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		att := func(at time.Time) *herald.Event {
			return typedEvent(t, login, map[string]any{
				"id": "att", "eventStatus": "attempted", "coreCustomerId": "C1", "occurredAt": sec(0),
				"data": map[string]any{"external_login_id": "L1"},
			}, at)
		}
		appendOne(t, s, "acme", att(now))
		life, profile := findLifecycle(t, s, "acme", "L1"), findProfile(t, s, "acme", "C1")
		res := appendOne(t, s, "acme", att(now.Add(time.Hour)))
		wantDuplicate(t, "att again", res[0], base+1, now)
		res = appendOne(t, s, "acme", att(now.Add(time.Hour)), att(now.Add(time.Hour)))
		wantDuplicate(t, "att again, first of two in one call", res[0], base+1, now)
		wantDuplicate(t, "att again, second of two in one call", res[1], base+1, now)
		wantLifecycle(t, "L1 after resends", findLifecycle(t, s, "acme", "L1"), life)
		wantProfile(t, "C1 after resends", findProfile(t, s, "acme", "C1"), profile)
	})
}

func testFindLifecycles(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	// The numbers below count the case's events; AfterSeq in the table
	// counts from base.
	base := map[string]int64{"acme": quietAccount(t, s, "acme"), "globex": quietAccount(t, s, "globex")}
	login := builtinType(t, "authentication", "login")
	transaction := builtinType(t, "transactions", "transaction")

	hour := func(n int) time.Time { return baseTime.Add(time.Duration(n) * time.Hour) }
	now := hour(10)
	lg := func(id, status, loginID string, at time.Time, who map[string]any) *herald.Event {
		f := map[string]any{"id": id, "eventStatus": status, "occurredAt": at, "data": map[string]any{"external_login_id": loginID}}
		maps.Copy(f, who)
		return typedEvent(t, login, f, now)
	}
	tx := func(id, status, txID, customer string, at time.Time) *herald.Event {
		return typedEvent(t, transaction, map[string]any{
			"id": id, "eventStatus": status, "coreCustomerId": customer, "occurredAt": at,
			"data": map[string]any{"external_transaction_id": txID, "amount": "5.00", "currency": "EUR"},
		}, now)
	}
	c := func(id string) map[string]any { return map[string]any{"coreCustomerId": id} }
	// Lifecycles begin (FirstSeq) in the order L1 T1 L2 T2 X1 L3, which
	// is not the order they began in by occurredAt. L1 ends an hour and a
	// half after it began: time filters must look at the beginning only.
	appendOne(t, s, "acme",
		lg("l1a", "attempted", "L1", hour(0), c("C1")),                     // 1
		lg("l1b", "succeeded", "L1", hour(1).Add(30*time.Minute), c("C1")), // 2
		tx("t1a", "pending", "T1", "C1", hour(2)),                          // 3
		lg("l2a", "attempted", "L2", hour(1), c("C2")),                     // 4
		tx("t2a", "pending", "T2", "C2", hour(3)),                          // 5
		tx("t2b", "denied", "T2", "C2", hour(3).Add(10*time.Minute)),       // 6
		event(t, map[string]any{ // 7
			"id": "x1a", "category": "custom", "type": "thing", "eventLifecycleId": "X1",
			"occurredAt": hour(4).Format(time.RFC3339Nano),
		}, now),
		lg("l3a", "succeeded", "L3", hour(5), map[string]any{"agentId": "C3", "agentType": "customer"}), // 8
	)
	// L3's attempt arrives late and moves its beginning before all others;
	// X1 gains an entity from its second event.
	appendOne(t, s, "acme",
		lg("l3b", "attempted", "L3", hour(-1), map[string]any{"agentId": "C3", "agentType": "customer"}),
		event(t, map[string]any{
			"id": "x1b", "category": "custom", "type": "thing", "eventLifecycleId": "X1", "coreCustomerId": "C4",
			"occurredAt": hour(4).Add(time.Minute).Format(time.RFC3339Nano),
		}, now),
	)
	// globex has a lifecycle L1 too, of another type.
	appendOne(t, s, "globex", tx("g1", "approved", "L1", "C1", hour(0)), tx("g2", "pending", "G1", "C1", hour(0)))

	all := herald.LifecycleFilter{Limit: 100}
	with := variant(all)
	yes, no := true, false
	for _, tc := range []struct {
		name    string
		account string
		filter  herald.LifecycleFilter
		want    []string
	}{
		{"no filter", "acme", all, []string{"L1", "T1", "L2", "T2", "X1", "L3"}},
		{"category", "acme", with(func(f *herald.LifecycleFilter) { f.Category = "authentication" }), []string{"L1", "L2", "L3"}},
		{"type", "acme", with(func(f *herald.LifecycleFilter) { f.Type = "transaction" }), []string{"T1", "T2"}},
		{"unregistered type", "acme", with(func(f *herald.LifecycleFilter) { f.Type = "thing" }), []string{"X1"}},
		{"status", "acme", with(func(f *herald.LifecycleFilter) { f.Status = "succeeded" }), []string{"L1", "L3"}},
		{"status pending", "acme", with(func(f *herald.LifecycleFilter) { f.Status = "pending" }), []string{"T1"}},
		{"terminal", "acme", with(func(f *herald.LifecycleFilter) { f.Terminal = &yes }), []string{"L1", "T2", "L3"}},
		{"not terminal", "acme", with(func(f *herald.LifecycleFilter) { f.Terminal = &no }), []string{"T1", "L2", "X1"}},
		{"entity", "acme", with(func(f *herald.LifecycleFilter) { f.EntityID = "C1" }), []string{"L1", "T1"}},
		{"entity that is an agent", "acme", with(func(f *herald.LifecycleFilter) { f.EntityID = "C3" }), []string{"L3"}},
		{"entity of a later event", "acme", with(func(f *herald.LifecycleFilter) { f.EntityID = "C4" }), []string{"X1"}},
		{"occurredAfter is inclusive", "acme", with(func(f *herald.LifecycleFilter) { f.OccurredAfter = hour(1) }), []string{"T1", "L2", "T2", "X1"}},
		{"occurredBefore is exclusive", "acme", with(func(f *herald.LifecycleFilter) { f.OccurredBefore = hour(1) }), []string{"L1", "L3"}},
		{"occurred range, by the first event", "acme", with(func(f *herald.LifecycleFilter) {
			f.OccurredAfter, f.OccurredBefore = hour(1), hour(2)
		}), []string{"L2"}},
		{"occurred range in another zone", "acme", with(func(f *herald.LifecycleFilter) {
			zone := time.FixedZone("UTC-7", -7*3600)
			f.OccurredAfter, f.OccurredBefore = hour(1).In(zone), hour(2).In(zone)
		}), []string{"L2"}},
		{"began before the others, by a late event", "acme", with(func(f *herald.LifecycleFilter) { f.OccurredBefore = hour(0) }), []string{"L3"}},
		{"afterSeq", "acme", with(func(f *herald.LifecycleFilter) { f.AfterSeq = 3 }), []string{"L2", "T2", "X1", "L3"}},
		{"afterSeq past the end", "acme", with(func(f *herald.LifecycleFilter) { f.AfterSeq = 8 }), nil},
		{"limit", "acme", with(func(f *herald.LifecycleFilter) { f.Limit = 2 }), []string{"L1", "T1"}},
		{"limit and afterSeq page on", "acme", with(func(f *herald.LifecycleFilter) { f.Limit, f.AfterSeq = 2, 3 }), []string{"L2", "T2"}},
		{"category and status", "acme", with(func(f *herald.LifecycleFilter) {
			f.Category, f.Status = "transactions", "denied"
		}), []string{"T2"}},
		{"type and not terminal", "acme", with(func(f *herald.LifecycleFilter) { f.Type, f.Terminal = "login", &no }), []string{"L2"}},
		{"entity and terminal", "acme", with(func(f *herald.LifecycleFilter) { f.EntityID, f.Terminal = "C1", &yes }), []string{"L1"}},
		{"every field", "acme", herald.LifecycleFilter{
			Category: "authentication", Type: "login", Status: "succeeded", Terminal: &yes, EntityID: "C3",
			OccurredAfter: hour(-2), OccurredBefore: hour(0), AfterSeq: 7, Limit: 10,
		}, []string{"L3"}},
		{"no match", "acme", with(func(f *herald.LifecycleFilter) { f.Status = "approved" }), nil},
		{"unknown account", "nobody", all, nil},
		{"other account", "globex", all, []string{"L1", "G1"}},
		{"other account, by type", "globex", with(func(f *herald.LifecycleFilter) { f.Type = "login" }), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.filter.AfterSeq += base[tc.account]
			got, err := s.FindLifecycles(t.Context(), tc.account, tc.filter)
			if err != nil {
				t.Fatalf("FindLifecycles: %v", err)
			}
			if !slices.Equal(lifecycleIDs(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("FindLifecycles(%s, %+v) = %v, want %v", tc.account, tc.filter, lifecycleIDs(got), tc.want)
			}
			// A listed lifecycle is the whole record, as read alone.
			for _, l := range got {
				wantLifecycle(t, "listed "+l.ID, l, findLifecycle(t, s, tc.account, l.ID))
			}
		})
	}

	t.Run("limit must be positive", func(t *testing.T) {
		t.Parallel()
		for _, limit := range []int{0, -1} {
			_, err := s.FindLifecycles(t.Context(), "acme", herald.LifecycleFilter{Limit: limit})
			wantCode(t, fmt.Sprintf("FindLifecycles with Limit %d", limit), err, herald.EINVALID)
		}
	})

	t.Run("other account's lifecycle of the same id", func(t *testing.T) {
		t.Parallel()
		l := findLifecycle(t, s, "globex", "L1")
		if l.AccountID != "globex" || l.Type != "transaction" || l.Status != "approved" || l.EventCount != 1 {
			t.Errorf("FindLifecycle(globex, L1) = account %q %s/%s status %q, %d events; want globex's transaction, approved, 1 event",
				l.AccountID, l.Category, l.Type, l.Status, l.EventCount)
		}
		l = findLifecycle(t, s, "acme", "L1")
		if l.AccountID != "acme" || l.Type != "login" || l.EventCount != 2 {
			t.Errorf("FindLifecycle(acme, L1) = account %q %s/%s, %d events; want acme's login, 2 events",
				l.AccountID, l.Category, l.Type, l.EventCount)
		}
	})
}

// jobType is a type without transitions, so that any order of statuses
// is allowed: done and failed are terminal, and the data of running and
// done persists to the profile.
func jobType(accountID string) *herald.EventType {
	return &herald.EventType{
		Category: "jobs", Type: "job",
		Statuses: []herald.StatusDef{
			{Name: "queued", Description: "Waiting."},
			{Name: "running", Description: "Under way.", Persist: true},
			{Name: "done", Description: "Finished.", Persist: true},
			{Name: "failed", Description: "Gave up."},
		},
		TerminalStatuses: []string{"done", "failed"},
		CreatedAt:        baseTime, UpdatedAt: baseTime, AccountID: accountID,
	}
}

// typedEvent builds an event of the registered type def as the API hands
// it to the store: parsed, completed at now, with Def set and, when the
// client sent no eventLifecycleId, the one at the type's pointer. With a
// nil def, the event is of an unregistered type that fields name.
// occurredAt may be given as a time.Time.
func typedEvent(t *testing.T, def *herald.EventType, fields map[string]any, now time.Time) *herald.Event {
	t.Helper()
	f := maps.Clone(fields)
	if def != nil {
		f["category"], f["type"] = def.Category, def.Type
	}
	if at, ok := f["occurredAt"].(time.Time); ok {
		f["occurredAt"] = at.Format(time.RFC3339Nano)
	}
	e := event(t, f, now)
	if def == nil {
		return e
	}
	e.Def = def
	if e.EventLifecycleID == "" && def.LifecycleIDPointer != "" {
		if v, ok := herald.ResolvePointer(e.Data, strings.TrimPrefix(def.LifecycleIDPointer, "/data")); ok {
			if err := json.Unmarshal(v, &e.EventLifecycleID); err != nil {
				t.Fatalf("event %s: lifecycle id at %s: %v", e.ID, def.LifecycleIDPointer, err)
			}
		}
	}
	return e
}

// wantRefused checks that a result is an EINVALID failure naming pointer
// among its fields, and that the event got no seq.
func wantRefused(t *testing.T, what string, r herald.AppendResult, pointer string) {
	t.Helper()
	var he *herald.Error
	if !errors.As(r.Err, &he) || he.Code != herald.EINVALID || r.Seq != 0 || r.Duplicate ||
		!slices.ContainsFunc(he.Fields, func(f herald.FieldError) bool { return f.Pointer == pointer }) {
		t.Errorf("%s: got %s, want code %s with a field error at %s, and no seq", what, fmtResult(r), herald.EINVALID, pointer)
		return
	}
	wantNoSQL(t, what, r.Err)
}

func findLifecycle(t *testing.T, s herald.LifecycleService, accountID, id string) *herald.Lifecycle {
	t.Helper()
	l, err := s.FindLifecycle(t.Context(), accountID, id)
	return must(t, l, err, "FindLifecycle(%s, %s)", accountID, id)
}

// wantLifecycle checks that got holds every field of want. Data compares
// as JSON; Events must be empty, as FindLifecycle and FindLifecycles
// leave them.
func wantLifecycle(t *testing.T, what string, got, want *herald.Lifecycle) {
	t.Helper()
	var diffs []string
	diff := func(field string, g, w any) {
		diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", field, g, w))
	}
	if got.ID != want.ID || got.AccountID != want.AccountID {
		diff("account and id", got.AccountID+" "+got.ID, want.AccountID+" "+want.ID)
	}
	if got.Category != want.Category || got.Type != want.Type {
		diff("type", got.Category+"/"+got.Type, want.Category+"/"+want.Type)
	}
	if got.Status != want.Status || got.Terminal != want.Terminal {
		diff("status", fmt.Sprintf("%q terminal %t", got.Status, got.Terminal), fmt.Sprintf("%q terminal %t", want.Status, want.Terminal))
	}
	if got.EntityID != want.EntityID {
		diff("EntityID", got.EntityID, want.EntityID)
	}
	if !sameHistory(got.History, want.History) {
		diffs = append(diffs, diffHistory(got.History, want.History))
	}
	if !jsonEqual(got.Data, want.Data) {
		diff("Data", string(got.Data), string(want.Data))
	}
	if got.EventCount != want.EventCount {
		diff("EventCount", got.EventCount, want.EventCount)
	}
	if !got.FirstOccurredAt.Equal(want.FirstOccurredAt) || !got.LastOccurredAt.Equal(want.LastOccurredAt) {
		diff("occurred", fmtRange(got.FirstOccurredAt, got.LastOccurredAt), fmtRange(want.FirstOccurredAt, want.LastOccurredAt))
	}
	if got.FirstSeq != want.FirstSeq || got.LastSeq != want.LastSeq {
		diff("seqs", fmt.Sprintf("%d…%d", got.FirstSeq, got.LastSeq), fmt.Sprintf("%d…%d", want.FirstSeq, want.LastSeq))
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		diff("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	if got.Redacted != want.Redacted {
		diff("Redacted", got.Redacted, want.Redacted)
	}
	if len(got.Events) != 0 {
		diff("Events", ids(got.Events), "none (not filled)")
	}
	if len(diffs) > 0 {
		t.Errorf("%s: lifecycle %s:\n\t%s", what, want.ID, strings.Join(diffs, "\n\t"))
	}
}

func sameHistory(got, want []herald.LifecycleStep) bool {
	return slices.EqualFunc(got, want, func(g, w herald.LifecycleStep) bool {
		return g.Status == w.Status && g.Terminal == w.Terminal && g.EventID == w.EventID &&
			g.Seq == w.Seq && g.OccurredAt.Equal(w.OccurredAt)
	})
}

// diffHistory describes how got differs from want: whole, when they are
// short, else from the first step that differs.
func diffHistory(got, want []herald.LifecycleStep) string {
	if len(got) <= 6 && len(want) <= 6 {
		return fmt.Sprintf("History =\n\t\t%s\n\twant\n\t\t%s", fmtHistory(got), fmtHistory(want))
	}
	i := 0
	for i < len(got) && i < len(want) && sameHistory(got[i:i+1], want[i:i+1]) {
		i++
	}
	step := func(h []herald.LifecycleStep) string {
		if i < len(h) {
			return fmtHistory(h[i : i+1])
		}
		return "(none)"
	}
	return fmt.Sprintf("History has %d steps, want %d; step %d is %s, want %s", len(got), len(want), i, step(got), step(want))
}

func fmtHistory(h []herald.LifecycleStep) string {
	parts := make([]string, len(h))
	for i, s := range h {
		terminal := ""
		if s.Terminal {
			terminal = " (terminal)"
		}
		parts[i] = fmt.Sprintf("%s%s by %s seq %d at %s", s.Status, terminal, s.EventID, s.Seq, s.OccurredAt.UTC().Format(time.RFC3339Nano))
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	return strings.Join(parts, "; ")
}

func fmtRange(from, to time.Time) string {
	return from.UTC().Format(time.RFC3339Nano) + " … " + to.UTC().Format(time.RFC3339Nano)
}

func lifecycleIDs(list []*herald.Lifecycle) []string {
	out := make([]string, len(list))
	for i, l := range list {
		out[i] = l.ID
	}
	return out
}
