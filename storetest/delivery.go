package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// Times in the delivery cases are the ones the cases pass: a lease's
// clock is the caller's, so no case waits for time to pass.

// testLeases checks who holds which subscription: an owner gets free ones
// up to its max, keeps its own, loses them when they expire or are given
// up, and never gets a paused or disabled one.
func testLeases(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	for _, sub := range []*herald.Subscription{
		hookSub("acme", "sub_1"), hookSub("acme", "sub_2"), hookSub("acme", "sub_paused"),
		hookSub("acme", "sub_disabled"), hookSub("globex", "sub_1"), hookSub("globex", "sub_2"),
	} {
		createSub(t, s, ctx, sub)
	}
	setState(t, s, "acme", "sub_paused", herald.SubscriptionPaused, "")
	setState(t, s, "acme", "sub_disabled", herald.SubscriptionDisabled, "gone")
	active := []string{"acme/sub_1", "acme/sub_2", "globex/sub_1", "globex/sub_2"}
	t0 := baseTime.Add(time.Hour)
	const ttl = time.Minute
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	// A takes 3 of the 4 active ones, of both accounts, with what the
	// deliverer needs of them.
	heldA := lease(t, s, "A", t0, ttl, 3)
	if len(heldA) != 3 || !isSubset(subKeys(heldA), active) {
		t.Fatalf("A (max 3) holds %v; want 3 of %v", subKeys(heldA), active)
	}
	for _, sub := range heldA {
		if want := hookSub(sub.AccountID, sub.ID); sub.URL != want.URL || sub.State != herald.SubscriptionActive || sub.MaxInFlight != want.MaxInFlight {
			t.Errorf("leased %s/%s: URL %q, state %q, max in flight %d; want the stored subscription", sub.AccountID, sub.ID, sub.URL, sub.State, sub.MaxInFlight)
		}
	}
	keysA := subKeys(heldA)
	free := slices.DeleteFunc(slices.Clone(active), func(k string) bool { return slices.Contains(keysA, k) })

	// A keeps its own, and extends them to now+ttl.
	if got := subKeys(lease(t, s, "A", at(10*time.Second), ttl, 3)); !slices.Equal(got, keysA) {
		t.Errorf("A again holds %v, want the same %v", got, keysA)
	}
	// B gets the free one only; A's have not expired, though they would
	// have without the extension.
	if got := subKeys(lease(t, s, "B", at(ttl+5*time.Second), ttl, 10)); !slices.Equal(got, free) {
		t.Errorf("B at t0+ttl+5s holds %v, want the one A left, %v", got, free)
	}
	if got := subKeys(lease(t, s, "A", at(ttl+5*time.Second), ttl, 3)); !slices.Equal(got, keysA) {
		t.Errorf("A at t0+ttl+5s holds %v, want its own %v", got, keysA)
	}

	// A's leases run until t0+2ttl+5s: once expired, B takes them.
	later := at(2*ttl + 10*time.Second)
	if got := subKeys(lease(t, s, "B", later, ttl, 10)); !slices.Equal(got, active) {
		t.Errorf("B after A's leases expired holds %v, want all active ones, %v", got, active)
	}
	if got := lease(t, s, "A", later, ttl, 10); len(got) != 0 {
		t.Errorf("A after B took its expired leases holds %v, want none", subKeys(got))
	}

	// Paused, it is not returned, and nobody else takes it; resumed, it is
	// B's again, the lease having been left.
	setState(t, s, "acme", "sub_1", herald.SubscriptionPaused, "")
	withoutPaused := slices.DeleteFunc(slices.Clone(active), func(k string) bool { return k == "acme/sub_1" })
	if got := subKeys(lease(t, s, "B", later, ttl, 10)); !slices.Equal(got, withoutPaused) {
		t.Errorf("B with acme/sub_1 paused holds %v, want %v", got, withoutPaused)
	}
	if got := lease(t, s, "C", later, ttl, 10); len(got) != 0 {
		t.Errorf("C holds %v while B's leases run; want none", subKeys(got))
	}
	setState(t, s, "acme", "sub_1", herald.SubscriptionActive, "")
	if got := subKeys(lease(t, s, "B", later, ttl, 10)); !slices.Equal(got, active) {
		t.Errorf("B with acme/sub_1 resumed holds %v, want %v", got, active)
	}
	if got := lease(t, s, "C", later, ttl, 10); len(got) != 0 {
		t.Errorf("C holds %v while B's leases run; want none", subKeys(got))
	}

	// Given up, they are free at once.
	if err := s.ReleaseSubscriptions(ctx, "B"); err != nil {
		t.Fatalf("ReleaseSubscriptions(B): %v", err)
	}
	if got := subKeys(lease(t, s, "C", later, ttl, 10)); !slices.Equal(got, active) {
		t.Errorf("C after B released its leases holds %v, want %v", got, active)
	}
	// Releasing what one does not hold lets nothing go.
	if err := s.ReleaseSubscriptions(ctx, "B"); err != nil {
		t.Fatalf("ReleaseSubscriptions(B) again: %v", err)
	}
	if got := lease(t, s, "B", later, ttl, 10); len(got) != 0 {
		t.Errorf("B after releasing holds %v, want none: C holds them", subKeys(got))
	}

	// Paused or disabled ones are free for nobody, even with no lease
	// at all.
	if err := s.ReleaseSubscriptions(ctx, "C"); err != nil {
		t.Fatalf("ReleaseSubscriptions(C): %v", err)
	}
	day := at(24 * time.Hour)
	if got := subKeys(lease(t, s, "D", day, ttl, 100)); !slices.Equal(got, active) {
		t.Errorf("D with nothing leased holds %v, want the active ones, %v", got, active)
	}

	// An owner at its max keeps its own rather than take a free one.
	if err := s.ReleaseSubscriptions(ctx, "D"); err != nil {
		t.Fatalf("ReleaseSubscriptions(D): %v", err)
	}
	heldE := subKeys(lease(t, s, "E", day, ttl, 1))
	heldF := subKeys(lease(t, s, "F", day, ttl, 2))
	if len(heldE) != 1 || len(heldF) != 2 || slices.Contains(heldF, heldE[0]) {
		t.Fatalf("E (max 1) holds %v, then F (max 2) %v; want one, then two others", heldE, heldF)
	}
	if err := s.ReleaseSubscriptions(ctx, "E"); err != nil {
		t.Fatalf("ReleaseSubscriptions(E): %v", err)
	}
	if got := subKeys(lease(t, s, "F", day, ttl, 2)); !slices.Equal(got, heldF) {
		t.Errorf("F (max 2) with %s free holds %v; want its own, %v", heldE[0], got, heldF)
	}
	if got := subKeys(lease(t, s, "G", day, ttl, 10)); len(got) != 2 || slices.ContainsFunc(got, func(k string) bool { return slices.Contains(heldF, k) }) {
		t.Errorf("G holds %v; want the 2 F does not hold", got)
	}
}

// testLeasesFromTwoNodes has owners on two nodes lease at once, with
// leases that do not expire while they run: a subscription must go to one
// owner only, and each owner gets no more than its max.
func testLeasesFromTwoNodes(t *testing.T, newDB NewDatabase) {
	open := newDB(t)
	nodes := []Store{open(), open()}
	const (
		numSubs        = 24
		ownersPerNode  = 3
		maxEach        = 5
		callsEachOwner = 8
	)
	quietAccount(t, nodes[0], "acme")
	quietAccount(t, nodes[0], "globex")
	var all []string
	for i := range numSubs {
		account := []string{"acme", "globex"}[i%2]
		id := fmt.Sprintf("sub_%02d", i)
		createSub(t, nodes[0], t.Context(), hookSub(account, id))
		all = append(all, account+"/"+id)
	}
	slices.Sort(all)
	twoNodeLeases[*herald.Subscription]{
		call:          "LeaseSubscriptions",
		lease:         Store.LeaseSubscriptions,
		key:           subKey,
		ownersPerNode: ownersPerNode, maxEach: maxEach, callsEach: callsEachOwner,
	}.run(t, nodes, all, baseTime.Add(time.Hour))
}

// testSaveDelivery checks what one commit of a deliverer stores, and that
// a deliverer without the lease stores nothing.
func testSaveDelivery(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	base := quietAccount(t, s, "acme")
	var events []*herald.Event
	for i := 1; i <= 12; i++ {
		events = append(events, page(t, fmt.Sprintf("ev%02d", i), "", "", baseTime))
	}
	appendOne(t, s, "acme", events...)
	seq := func(i int) int64 { return base + int64(i) }
	evID := func(i int) string { return fmt.Sprintf("ev%02d", i) }
	sub := hookSub("acme", "sub_1")
	sub.Cursor = base
	createSub(t, s, ctx, sub)
	createSub(t, s, ctx, hookSub("acme", "sub_2"))
	t0 := baseTime.Add(time.Hour)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const ttl = time.Minute

	// Never leased: refused.
	wantSaveRefused(t, s, "SaveDelivery by an owner that never leased it", &herald.DeliveryProgress{
		AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Cursor: seq(3),
		Attempts: []*herald.Attempt{attempt("sub_1", evID(1), seq(1), 1, t0, herald.AttemptDelivered, 200)},
	})
	if held := subKeys(lease(t, s, "A", t0, ttl, 10)); !slices.Equal(held, []string{"acme/sub_1", "acme/sub_2"}) {
		t.Fatalf("A holds %v, want both", held)
	}

	// First commit: one delivered, one to retry, one dead; the
	// subscription starts failing.
	failing := at(time.Second)
	a1 := []*herald.Attempt{
		attempt("sub_1", evID(1), seq(1), 1, at(time.Second), herald.AttemptDelivered, 204),
		attempt("sub_1", evID(2), seq(2), 1, at(time.Second), herald.AttemptFailed, 503),
		attempt("sub_1", evID(3), seq(3), 1, at(2*time.Second), herald.AttemptFinal, 400),
	}
	a1[0].LatencyMicros = 1234
	a1[1].Error, a1[1].Response, a1[1].LatencyMicros = "server error", "<html>Service Unavailable ✗</html>", 98765
	a1[2].Response = `{"error":"bad payload"}`
	m2 := message("sub_1", evID(2), seq(2), herald.MessageRetrying, 1, at(6*time.Second), at(time.Second))
	m2.LastStatus, m2.LastError = 503, "server error"
	m3 := message("sub_1", evID(3), seq(3), herald.MessageDead, 1, time.Time{}, at(2*time.Second))
	m3.LastStatus = 400
	saveDelivery(t, s, &herald.DeliveryProgress{
		AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Cursor: seq(5),
		Attempts: a1, Messages: []*herald.Message{m2, m3}, FailingSince: &failing,
	})
	wantCursor(t, s, "sub_1", seq(5), &failing)
	wantMessages(t, "after the first commit", s, "sub_1", []*herald.Message{m2, m3})
	stored := findAttempts(t, s, "acme", "sub_1", herald.AttemptFilter{Limit: 100})
	wantAttempts(t, "after the first commit", stored, a1)

	// Second commit: the cursor does not go back, the first failure is
	// kept, a message is replaced and one added.
	m2b := message("sub_1", evID(2), seq(2), herald.MessageRetrying, 2, at(5*time.Minute), at(time.Second))
	m2b.LastStatus, m2b.LastError = 0, "connection refused"
	m4 := message("sub_1", evID(4), seq(4), herald.MessageRetrying, 1, at(10*time.Second), at(5*time.Second))
	m4.LastStatus = 429
	a2 := []*herald.Attempt{attempt("sub_1", evID(2), seq(2), 2, at(10*time.Second), herald.AttemptFailed, 0)}
	a2[0].Error = "connection refused"
	laterFailure := at(10 * time.Second)
	saveDelivery(t, s, &herald.DeliveryProgress{
		AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Cursor: seq(3),
		Attempts: a2, Messages: []*herald.Message{m2b, m4}, FailingSince: &laterFailure,
	})
	wantCursor(t, s, "sub_1", seq(5), &failing)
	wantMessages(t, "after the second commit", s, "sub_1", []*herald.Message{m2b, m3, m4})
	wantAttempts(t, "after the second commit", findAttempts(t, s, "acme", "sub_1", herald.AttemptFilter{Limit: 100}), append(slices.Clone(a1), a2...))

	// Third commit: seq 2 got through. Its message is done, the failure
	// is over, and a cursor of 0 leaves it where it is.
	mark := lastSeq(t, s, "acme")
	a3 := []*herald.Attempt{attempt("sub_1", evID(2), seq(2), 3, at(6*time.Minute), herald.AttemptDelivered, 200)}
	saveDelivery(t, s, &herald.DeliveryProgress{
		AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Attempts: a3, Done: []int64{seq(2)}, ClearFailing: true,
	})
	wantCursor(t, s, "sub_1", seq(5), nil)
	wantMessages(t, "after seq 2 was done", s, "sub_1", []*herald.Message{m3, m4})
	if sys := newEvents(t, s, "acme", mark); !slices.Equal(kinds(sys), []string{"subscription/recovered"}) {
		t.Errorf("the commit that cleared the failure wrote %s; want subscription recovered", fmtSystemEvents(sys))
	}

	// Cleared when not failing: no event. A done seq with no message is
	// no error. The cursor moves on.
	mark = lastSeq(t, s, "acme")
	saveDelivery(t, s, &herald.DeliveryProgress{
		AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Cursor: seq(8), Done: []int64{seq(7)}, ClearFailing: true,
	})
	wantCursor(t, s, "sub_1", seq(8), nil)
	if sys := newEvents(t, s, "acme", mark); len(sys) != 0 {
		t.Errorf("ClearFailing on a subscription not failing wrote %s", fmtSystemEvents(sys))
	}
	// Failing again: set anew.
	again := at(7 * time.Minute)
	saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", FailingSince: &again})
	wantCursor(t, s, "sub_1", seq(8), &again)
	// The other subscription was not touched.
	if got := findSub(t, s, "acme", "sub_2"); got.FailingSince != nil {
		t.Errorf("sub_2 failing since %s, but only sub_1 failed", got.FailingSince)
	}
	if got := findMessages(t, s, "acme", "sub_2", herald.MessageFilter{Limit: 100}); len(got) != 0 {
		t.Errorf("sub_2 has messages %v, but they are sub_1's", msgSeqs(got))
	}
	if got := findAttempts(t, s, "acme", "sub_2", herald.AttemptFilter{Limit: 100}); len(got) != 0 {
		t.Errorf("sub_2 has %d attempts, but they are sub_1's", len(got))
	}
	attempts := len(findAttempts(t, s, "acme", "sub_1", herald.AttemptFilter{Limit: 100}))

	// B takes A's expired lease: A's next commit is refused, whole.
	if held := subKeys(lease(t, s, "B", at(time.Hour), ttl, 10)); !slices.Equal(held, []string{"acme/sub_1", "acme/sub_2"}) {
		t.Fatalf("B after A's leases expired holds %v, want both", held)
	}
	lost := &herald.DeliveryProgress{
		AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Cursor: seq(12),
		Attempts:     []*herald.Attempt{attempt("sub_1", evID(9), seq(9), 1, at(time.Hour), herald.AttemptFailed, 500)},
		Messages:     []*herald.Message{message("sub_1", evID(9), seq(9), herald.MessageRetrying, 1, at(2*time.Hour), at(time.Hour))},
		Done:         []int64{seq(3), seq(4)},
		ClearFailing: true,
	}
	wantSaveRefused(t, s, "SaveDelivery by A after B took the lease", lost)
	if err := s.ReleaseSubscriptions(ctx, "B"); err != nil {
		t.Fatalf("ReleaseSubscriptions(B): %v", err)
	}
	// Released, the lease is nobody's: neither A nor B records.
	wantSaveRefused(t, s, "SaveDelivery by A, the lease released", lost)
	lost.Owner = "B"
	wantSaveRefused(t, s, "SaveDelivery by B after it released the lease", lost)
	wantCursor(t, s, "sub_1", seq(8), &again)
	wantMessages(t, "after the refused commits", s, "sub_1", []*herald.Message{m3, m4})
	if got := findAttempts(t, s, "acme", "sub_1", herald.AttemptFilter{Limit: 100}); len(got) != attempts {
		t.Errorf("after the refused commits, sub_1 has %d attempts, want %d", len(got), attempts)
	}

	// Leased again, B records.
	lease(t, s, "B", at(time.Hour), ttl, 10)
	saveDelivery(t, s, lost)
	wantCursor(t, s, "sub_1", seq(12), nil)
	wantMessages(t, "after B's commit", s, "sub_1", lost.Messages)
	wantAuditVerified(t, s, "acme")
}

// testDueMessages checks which messages are sent now: the retrying ones
// that are due and, in ordered mode, the oldest message of each order key
// that is not dead, when its turn came.
func testDueMessages(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	sub := hookSub("acme", "sub_1")
	sub.Ordered = true
	createSub(t, s, ctx, sub)
	createSub(t, s, ctx, hookSub("acme", "sub_2"))
	createSub(t, s, ctx, hookSub("globex", "sub_1"))
	now := baseTime.Add(time.Hour)
	lease(t, s, "A", now, time.Hour, 10)

	var msgs []*herald.Message
	add := func(seq int64, key, state string, next time.Time) {
		m := message("sub_1", fmt.Sprintf("ev-%02d", seq), seq, state, 1, next, now.Add(-time.Hour))
		m.OrderKey = key
		if state == herald.MessageWaiting {
			m.Attempts = 0
		}
		msgs = append(msgs, m)
	}
	never := time.Time{}
	// Without an order key: the retrying ones due by now (at now too).
	add(1, "", herald.MessageRetrying, now.Add(-time.Second))
	add(2, "", herald.MessageRetrying, now)
	add(3, "", herald.MessageRetrying, now.Add(time.Second))
	add(4, "", herald.MessageDead, never)
	// Waiting without an order key: nothing to wait for, never due.
	add(5, "", herald.MessageWaiting, never)
	// K: a dead one does not block; 12 is due; 14 waits for it.
	add(10, "K", herald.MessageDead, never)
	add(12, "K", herald.MessageRetrying, now.Add(-time.Minute))
	add(14, "K", herald.MessageWaiting, never)
	// L: 11 is not due yet, so 13 waits.
	add(11, "L", herald.MessageRetrying, now.Add(time.Second))
	add(13, "L", herald.MessageWaiting, never)
	// M: a waiting one alone: its turn came.
	add(15, "M", herald.MessageWaiting, never)
	// N: a waiting one after a dead one.
	add(16, "N", herald.MessageDead, never)
	add(17, "N", herald.MessageWaiting, never)
	// P: two due; only the older is sent.
	add(18, "P", herald.MessageRetrying, now.Add(-time.Minute))
	add(19, "P", herald.MessageRetrying, now.Add(-time.Minute))
	// Q: due, then dead, then waiting.
	add(20, "Q", herald.MessageRetrying, now)
	add(21, "Q", herald.MessageDead, never)
	add(22, "Q", herald.MessageWaiting, never)
	// Saved out of seq order, over two commits.
	saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Messages: msgs[8:]})
	saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Messages: msgs[:8]})
	// Due messages of the other subscription and the other account.
	for _, other := range []struct{ account, id string }{{"acme", "sub_2"}, {"globex", "sub_1"}} {
		saveDelivery(t, s, &herald.DeliveryProgress{AccountID: other.account, SubscriptionID: other.id, Owner: "A", Messages: []*herald.Message{
			message(other.id, "ev-05", 5, herald.MessageRetrying, 1, now.Add(-time.Hour), now.Add(-time.Hour)),
			message(other.id, "ev-12", 12, herald.MessageDead, 8, never, now.Add(-time.Hour)),
		}})
	}

	wantDue := func(what string, at time.Time, limit int, want []int64) {
		t.Helper()
		got := dueMessages(t, s, "acme", "sub_1", at, limit)
		if !slices.Equal(msgSeqs(got), want) {
			t.Errorf("DueMessages %s = %v, want %v", what, msgSeqs(got), want)
		}
		for _, m := range got {
			if m.SubscriptionID != "sub_1" || m.EventID != fmt.Sprintf("ev-%02d", m.Seq) {
				t.Errorf("DueMessages %s: message %d is of subscription %q, event %q; want sub_1, ev-%02d", what, m.Seq, m.SubscriptionID, m.EventID, m.Seq)
			}
		}
	}
	wantDue("now", now, 100, []int64{1, 2, 12, 15, 17, 18, 20})
	wantDue("now, limit 3", now, 3, []int64{1, 2, 12})
	wantDue("a second later", now.Add(time.Second), 100, []int64{1, 2, 3, 11, 12, 15, 17, 18, 20})
	wantDue("an hour earlier", now.Add(-time.Hour), 100, []int64{15, 17})

	// Once 12 is done, 14's turn comes; 18 done, 19 is due.
	saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Done: []int64{12, 18}})
	wantDue("after 12 and 18 were done", now, 100, []int64{1, 2, 14, 15, 17, 19, 20})
	// Once 20 is dead, 22's turn comes.
	dead20 := message("sub_1", "ev-20", 20, herald.MessageDead, 8, never, now.Add(-time.Hour))
	dead20.OrderKey = "Q"
	saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Messages: []*herald.Message{dead20}})
	wantDue("after 20 died", now, 100, []int64{1, 2, 14, 15, 17, 19, 22})

	// Retried by hand, dead 10 is K's oldest again: 14 waits for it.
	retryAt := now.Add(time.Minute)
	if n, err := s.RetryMessages(ctx, "acme", "sub_1", herald.MessageFilter{EventIDs: []string{"ev-10"}, Limit: 100}, retryAt); err != nil || n != 1 {
		t.Fatalf("RetryMessages(ev-10) = %d, %v; want 1", n, err)
	}
	wantDue("after 10 was retried", retryAt, 100, []int64{1, 2, 3, 10, 11, 15, 17, 19, 22})

	if got := dueMessages(t, s, "acme", "sub_2", now, 100); !slices.Equal(msgSeqs(got), []int64{5}) {
		t.Errorf("DueMessages(sub_2) = %v, want [5]", msgSeqs(got))
	}
	if got := dueMessages(t, s, "globex", "sub_1", now, 100); !slices.Equal(msgSeqs(got), []int64{5}) {
		t.Errorf("DueMessages(globex, sub_1) = %v, want [5]", msgSeqs(got))
	}
}

// testRetryMessages checks the listing of messages and the manual retry
// of dead ones.
func testRetryMessages(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	createSub(t, s, ctx, hookSub("acme", "sub_1"))
	createSub(t, s, ctx, hookSub("acme", "sub_2"))
	t0 := baseTime.Add(time.Hour)
	lease(t, s, "A", t0, time.Hour, 10)
	minute := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

	// Message i was made at minute i.
	states := []string{"", herald.MessageDead, herald.MessageRetrying, herald.MessageDead, herald.MessageWaiting,
		herald.MessageDead, herald.MessageDead, herald.MessageRetrying, herald.MessageDead}
	var msgs []*herald.Message
	for i := 1; i <= 8; i++ {
		m := message("sub_1", fmt.Sprintf("ev-%d", i), int64(i), states[i], 3, time.Time{}, minute(i))
		switch states[i] {
		case herald.MessageRetrying:
			m.NextAttemptAt = minute(60)
		case herald.MessageWaiting:
			m.OrderKey, m.Attempts = "K", 0 // its turn came: due
		}
		m.LastStatus, m.LastError = 500, "boom"
		msgs = append(msgs, m)
	}
	saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Messages: msgs})
	saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_2", Owner: "A", Messages: []*herald.Message{
		message("sub_2", "ev-1", 1, herald.MessageDead, 8, time.Time{}, minute(1)),
	}})
	wantMessages(t, "as saved", s, "sub_1", msgs)

	with := variant(herald.MessageFilter{Limit: 100})
	for _, tc := range []struct {
		name string
		f    herald.MessageFilter
		want []int64
	}{
		{"all", with(func(f *herald.MessageFilter) {}), []int64{1, 2, 3, 4, 5, 6, 7, 8}},
		{"dead", with(func(f *herald.MessageFilter) { f.State = herald.MessageDead }), []int64{1, 3, 5, 6, 8}},
		{"waiting", with(func(f *herald.MessageFilter) { f.State = herald.MessageWaiting }), []int64{4}},
		{"event ids", with(func(f *herald.MessageFilter) { f.EventIDs = []string{"ev-4", "ev-3", "ev-9"} }), []int64{3, 4}},
		{"created in [3m, 6m)", with(func(f *herald.MessageFilter) { f.After, f.Before = minute(3), minute(6) }), []int64{3, 4, 5}},
		{"created from 7m", with(func(f *herald.MessageFilter) { f.After = minute(7) }), []int64{7, 8}},
		{"created before 2m", with(func(f *herald.MessageFilter) { f.Before = minute(2) }), []int64{1}},
		{"after seq 5", with(func(f *herald.MessageFilter) { f.AfterSeq = 5 }), []int64{6, 7, 8}},
		{"limit 2", with(func(f *herald.MessageFilter) { f.Limit = 2 }), []int64{1, 2}},
		{"dead after seq 2, limit 2", with(func(f *herald.MessageFilter) { f.State, f.AfterSeq, f.Limit = herald.MessageDead, 2, 2 }), []int64{3, 5}},
		{"dead of ev-2 ev-3", with(func(f *herald.MessageFilter) { f.State, f.EventIDs = herald.MessageDead, []string{"ev-2", "ev-3"} }), []int64{3}},
	} {
		if got := findMessages(t, s, "acme", "sub_1", tc.f); !slices.Equal(msgSeqs(got), tc.want) {
			t.Errorf("FindMessages(%s) = %v, want %v", tc.name, msgSeqs(got), tc.want)
		}
	}

	// A listing needs a limit, as every listing does.
	for _, limit := range []int{0, -1} {
		_, err := s.FindMessages(ctx, "acme", "sub_1", herald.MessageFilter{Limit: limit})
		wantCode(t, fmt.Sprintf("FindMessages(limit %d)", limit), err, herald.EINVALID)
	}

	// A retry makes the dead ones it selects due now, with a fresh
	// schedule, and leaves the others alone.
	retried := map[int64]time.Time{}
	retry := func(what string, f herald.MessageFilter, now time.Time, want int, seqs ...int64) {
		t.Helper()
		n, err := s.RetryMessages(ctx, "acme", "sub_1", f, now)
		if err != nil || n != want {
			t.Errorf("RetryMessages(%s) = %d, %v; want %d", what, n, err, want)
		}
		for _, seq := range seqs {
			retried[seq] = now
		}
		for _, m := range findMessages(t, s, "acme", "sub_1", herald.MessageFilter{Limit: 100}) {
			orig := msgs[m.Seq-1]
			if at, ok := retried[m.Seq]; ok {
				if m.State != herald.MessageRetrying || m.Attempts != 0 || !m.NextAttemptAt.Equal(at) || m.EventID != orig.EventID || !m.CreatedAt.Equal(orig.CreatedAt) {
					t.Errorf("after RetryMessages(%s), message %d: %s; want retrying, 0 attempts, due at %s, created as before",
						what, m.Seq, fmtMessage(m), at.Format(time.RFC3339Nano))
				}
			} else if !sameMessage(m, orig) {
				t.Errorf("after RetryMessages(%s), message %d: %s; want it untouched, %s", what, m.Seq, fmtMessage(m), fmtMessage(orig))
			}
		}
	}
	r1 := t0.Add(2 * time.Hour)
	retry("ev-1 ev-2", herald.MessageFilter{EventIDs: []string{"ev-1", "ev-2"}, Limit: 100}, r1, 1, 1)
	retry("ev-1 again", herald.MessageFilter{EventIDs: []string{"ev-1"}, Limit: 100}, r1.Add(time.Hour), 0)
	r2 := t0.Add(3 * time.Hour)
	retry("created in [5m, 7m)", herald.MessageFilter{After: minute(5), Before: minute(7), Limit: 100}, r2, 2, 5, 6)
	// A limit retries the first by seq; none (0) retries them all.
	r3 := t0.Add(4 * time.Hour)
	retry("limit 1", herald.MessageFilter{Limit: 1}, r3, 1, 3)
	retry("all, no limit", herald.MessageFilter{}, r3, 1, 8)
	retry("all again", herald.MessageFilter{}, r3, 0)

	// Due by the time they were retried at.
	if got := dueMessages(t, s, "acme", "sub_1", r2, 100); !slices.Equal(msgSeqs(got), []int64{1, 2, 4, 5, 6, 7}) {
		t.Errorf("DueMessages at the second retry = %v, want [1 2 4 5 6 7]", msgSeqs(got))
	}
	// sub_2's dead message was not retried.
	if got := findMessages(t, s, "acme", "sub_2", herald.MessageFilter{Limit: 100}); len(got) != 1 || got[0].State != herald.MessageDead {
		t.Errorf("sub_2's messages = %s, want its one still dead", fmtMessages(got))
	}
}

// testFindAttempts checks the listing of attempts: newest first, filtered,
// paged.
func testFindAttempts(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	createSub(t, s, ctx, hookSub("acme", "sub_1"))
	createSub(t, s, ctx, hookSub("acme", "sub_2"))
	t0 := baseTime.Add(time.Hour)
	lease(t, s, "A", t0, time.Hour, 10)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

	// One attempt a commit, sub_2's between them: the ids say the order.
	var saved []*herald.Attempt
	for i, a := range []*herald.Attempt{
		attempt("sub_1", "ev-a", 1, 1, sec(1), herald.AttemptFailed, 503),
		attempt("sub_1", "ev-b", 2, 1, sec(2), herald.AttemptDelivered, 200),
		attempt("sub_1", "ev-a", 1, 2, sec(3), herald.AttemptFailed, 502),
		attempt("sub_1", "ev-c", 3, 1, sec(4), herald.AttemptFinal, 404),
		attempt("sub_1", "ev-a", 1, 3, sec(5), herald.AttemptDelivered, 201),
		attempt("sub_1", "ev-d", 4, 1, sec(5), herald.AttemptFailed, 0),
	} {
		saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_1", Owner: "A", Attempts: []*herald.Attempt{a}})
		saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_2", Owner: "A", Attempts: []*herald.Attempt{
			attempt("sub_2", "ev-a", 1, i+1, sec(i+1), herald.AttemptFailed, 500),
		}})
		saved = append(saved, a)
	}
	all := findAttempts(t, s, "acme", "sub_1", herald.AttemptFilter{Limit: 100})
	wantAttempts(t, "of sub_1", all, saved)
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID {
			t.Errorf("FindAttempts: attempt %d has id %d after id %d; want newest first", i, all[i].ID, all[i-1].ID)
		}
	}
	// "label" names an attempt by event and number, newest first.
	label := func(list []*herald.Attempt) []string {
		return idsOf(list, func(a *herald.Attempt) string { return fmt.Sprintf("%s#%d", a.EventID, a.Number) })
	}
	if got, want := label(all), []string{"ev-d#1", "ev-a#3", "ev-c#1", "ev-a#2", "ev-b#1", "ev-a#1"}; !slices.Equal(got, want) {
		t.Fatalf("FindAttempts(sub_1) = %v, want %v", got, want)
	}

	with := variant(herald.AttemptFilter{Limit: 100})
	for _, tc := range []struct {
		name string
		f    herald.AttemptFilter
		want []string
	}{
		{"failed", with(func(f *herald.AttemptFilter) { f.Outcome = herald.AttemptFailed }), []string{"ev-d#1", "ev-a#2", "ev-a#1"}},
		{"delivered", with(func(f *herald.AttemptFilter) { f.Outcome = herald.AttemptDelivered }), []string{"ev-a#3", "ev-b#1"}},
		{"final", with(func(f *herald.AttemptFilter) { f.Outcome = herald.AttemptFinal }), []string{"ev-c#1"}},
		{"event ev-a", with(func(f *herald.AttemptFilter) { f.EventID = "ev-a" }), []string{"ev-a#3", "ev-a#2", "ev-a#1"}},
		{"failed of ev-a", with(func(f *herald.AttemptFilter) { f.EventID, f.Outcome = "ev-a", herald.AttemptFailed }), []string{"ev-a#2", "ev-a#1"}},
		{"at [2s, 4s)", with(func(f *herald.AttemptFilter) { f.After, f.Before = sec(2), sec(4) }), []string{"ev-a#2", "ev-b#1"}},
		{"at 5s or later", with(func(f *herald.AttemptFilter) { f.After = sec(5) }), []string{"ev-d#1", "ev-a#3"}},
		{"before 2s", with(func(f *herald.AttemptFilter) { f.Before = sec(2) }), []string{"ev-a#1"}},
		{"limit 2", with(func(f *herald.AttemptFilter) { f.Limit = 2 }), []string{"ev-d#1", "ev-a#3"}},
		{"before the third", with(func(f *herald.AttemptFilter) { f.BeforeID = all[2].ID }), []string{"ev-a#2", "ev-b#1", "ev-a#1"}},
		{"unknown event", with(func(f *herald.AttemptFilter) { f.EventID = "ev-z" }), []string{}},
	} {
		if got := label(findAttempts(t, s, "acme", "sub_1", tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("FindAttempts(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}

	// Paged by BeforeID, filtered, every attempt once.
	var paged []string
	f := herald.AttemptFilter{EventID: "ev-a", Limit: 2}
	for range 5 {
		page := findAttempts(t, s, "acme", "sub_1", f)
		paged = append(paged, label(page)...)
		if len(page) < f.Limit {
			break
		}
		f.BeforeID = page[len(page)-1].ID
	}
	if want := []string{"ev-a#3", "ev-a#2", "ev-a#1"}; !slices.Equal(paged, want) {
		t.Errorf("FindAttempts(ev-a) by pages of 2 = %v, want %v", paged, want)
	}

	for _, limit := range []int{0, -1} {
		_, err := s.FindAttempts(ctx, "acme", "sub_1", herald.AttemptFilter{Limit: limit})
		wantCode(t, fmt.Sprintf("FindAttempts(limit %d)", limit), err, herald.EINVALID)
	}
	if got := findAttempts(t, s, "acme", "sub_2", herald.AttemptFilter{Limit: 100}); len(got) != 6 {
		t.Errorf("FindAttempts(sub_2) = %d attempts, want its 6", len(got))
	}
	if got := findAttempts(t, s, "globex", "sub_1", herald.AttemptFilter{Limit: 100}); len(got) != 0 {
		t.Errorf("FindAttempts(globex, sub_1) = %v, want none: they are acme's", label(got))
	}
}

// testDeliveryFromTwoNodes has a deliverer on one node record as fast as
// it can while another node takes its lease over: every commit the first
// starts after the takeover must be refused, and none of its attempts may
// come after one of the new holder's.
func testDeliveryFromTwoNodes(t *testing.T, newDB NewDatabase) {
	open := newDB(t)
	nodes := []Store{open(), open()}
	quietAccount(t, nodes[0], "acme")
	sub := hookSub("acme", "sub_1")
	sub.Cursor = 1
	createSub(t, nodes[0], t.Context(), sub)
	t0 := baseTime.Add(time.Hour)
	const ttl = time.Minute
	if held := lease(t, nodes[0], "A", t0, ttl, 10); len(held) != 1 {
		t.Fatalf("A holds %v, want sub_1", subKeys(held))
	}

	const savers = 3
	type result struct {
		start time.Time
		seq   int64
		err   error
	}
	var (
		mu      sync.Mutex
		results []result
		takenAt time.Time // when B's lease call returned
		bSeqs   []int64   // seqs of B's attempts
		seqNext int64     = 1
		// started is closed once A has recorded a few times, leasing
		// when B starts its lease call, taken when it returned.
		started, leasing, taken = make(chan struct{}), make(chan struct{}), make(chan struct{})
	)
	nextSeq := func() int64 { mu.Lock(); defer mu.Unlock(); seqNext++; return seqNext }
	progress := func(owner string, seq int64) *herald.DeliveryProgress {
		id := fmt.Sprintf("%s-%d", owner, seq)
		return &herald.DeliveryProgress{
			AccountID: "acme", SubscriptionID: "sub_1", Owner: owner, Cursor: seq,
			Attempts: []*herald.Attempt{attempt("sub_1", id, seq, 1, t0, herald.AttemptFailed, 503)},
			Messages: []*herald.Message{message("sub_1", id, seq, herald.MessageRetrying, 1, t0, t0)},
		}
	}
	var once sync.Once
	var funcs []func(context.Context) error
	for w := range savers {
		funcs = append(funcs, func(ctx context.Context) error {
			// B goes ahead even if A fails early.
			defer once.Do(func() { close(started) })
			for i := 0; ; i++ {
				if i == 5 && w == 0 {
					once.Do(func() { close(started) })
				}
				seq := nextSeq()
				afterTakeover := isClosed(taken)
				start := time.Now()
				err := nodes[0].SaveDelivery(ctx, progress("A", seq))
				mu.Lock()
				results = append(results, result{start, seq, err})
				mu.Unlock()
				switch {
				case err == nil && afterTakeover:
					return fmt.Errorf("saver %d: SaveDelivery by A of seq %d, started after B took the lease, succeeded", w, seq)
				case err == nil:
				case herald.ErrorCode(err) == herald.ECONFLICT:
					if !isClosed(leasing) {
						return fmt.Errorf("saver %d: SaveDelivery refused before B asked for the lease: %w", w, err)
					}
					// Refused once the lease is gone: every later one is too.
					return nil
				default:
					return fmt.Errorf("saver %d: SaveDelivery: %w", w, err)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		})
	}
	funcs = append(funcs, func(ctx context.Context) error {
		select {
		case <-started:
		case <-ctx.Done():
			return ctx.Err()
		}
		close(leasing)
		// A store may skip a subscription whose row A's commit holds at
		// the moment (FOR UPDATE SKIP LOCKED): B asks again until it
		// gets it, as the engine would at its next lease call.
		var held []*herald.Subscription
		for tries := 0; len(held) == 0; tries++ {
			if ctx.Err() != nil {
				return fmt.Errorf("B: A's lease expired, but B did not get it in %d calls: %w", tries, ctx.Err())
			}
			var err error
			held, err = nodes[1].LeaseSubscriptions(ctx, "B", t0.Add(ttl+time.Second), ttl, 10)
			if err != nil {
				return fmt.Errorf("B: LeaseSubscriptions: %w", err)
			}
		}
		mu.Lock()
		takenAt = time.Now()
		mu.Unlock()
		close(taken)
		if len(held) != 1 {
			return fmt.Errorf("B after A's lease expired holds %v, want sub_1", subKeys(held))
		}
		for range 5 {
			seq := nextSeq()
			if err := nodes[1].SaveDelivery(ctx, progress("B", seq)); err != nil {
				return fmt.Errorf("B: SaveDelivery: %w", err)
			}
			mu.Lock()
			bSeqs = append(bSeqs, seq)
			mu.Unlock()
		}
		return nil
	})
	runConcurrently(t, funcs)

	stored := findAttempts(t, nodes[1], "acme", "sub_1", herald.AttemptFilter{Limit: 10000})
	slices.Reverse(stored) // oldest first
	byEvent := map[string]bool{}
	firstB := -1
	for i, a := range stored {
		byEvent[a.EventID] = true
		if strings.HasPrefix(a.EventID, "B-") && firstB < 0 {
			firstB = i
		}
		if strings.HasPrefix(a.EventID, "A-") && firstB >= 0 {
			t.Errorf("A's attempt %s (id %d) was stored after B's %s (id %d): both recorded at once",
				a.EventID, a.ID, stored[firstB].EventID, stored[firstB].ID)
		}
	}
	var okA, refusedA int
	for _, r := range results {
		id := fmt.Sprintf("A-%d", r.seq)
		switch {
		case r.err == nil:
			okA++
			if !byEvent[id] {
				t.Errorf("A's commit of seq %d succeeded, but its attempt is not stored", r.seq)
			}
			if r.start.After(takenAt) {
				t.Errorf("A's commit of seq %d, started %s after B took the lease, succeeded", r.seq, r.start.Sub(takenAt))
			}
		case errors.Is(r.err, context.Canceled):
		default:
			refusedA++
			if byEvent[id] {
				t.Errorf("A's commit of seq %d was refused (%v), but its attempt is stored", r.seq, r.err)
			}
		}
	}
	if refusedA != savers {
		t.Errorf("%d of A's commits were refused, want one by each of its %d savers", refusedA, savers)
	}
	for _, seq := range bSeqs {
		if !byEvent[fmt.Sprintf("B-%d", seq)] {
			t.Errorf("B's commit of seq %d is not stored", seq)
		}
	}
	if len(stored) != okA+len(bSeqs) {
		t.Errorf("%d attempts stored, want A's %d and B's %d", len(stored), okA, len(bSeqs))
	}
	// The cursor went only forward, to the highest seq committed.
	var maxSeq int64 = 1
	for _, a := range stored {
		maxSeq = max(maxSeq, a.Seq)
	}
	if got := findSub(t, nodes[0], "acme", "sub_1"); got.Cursor != maxSeq {
		t.Errorf("cursor %d, want the highest seq committed, %d", got.Cursor, maxSeq)
	}
	if got := findMessages(t, nodes[0], "acme", "sub_1", herald.MessageFilter{Limit: 10000}); len(got) != len(stored) {
		t.Errorf("%d messages stored, want one for each of the %d commits", len(got), len(stored))
	}
}

// lease calls LeaseSubscriptions and returns what owner holds.
func lease(t *testing.T, s Store, owner string, now time.Time, ttl time.Duration, max int) []*herald.Subscription {
	t.Helper()
	got, err := s.LeaseSubscriptions(t.Context(), owner, now, ttl, max)
	got = must(t, got, err, "LeaseSubscriptions(%s, %s)", owner, now.Format(time.RFC3339))
	if keys := subKeys(got); len(slices.Compact(slices.Clone(keys))) != len(keys) {
		t.Errorf("LeaseSubscriptions(%s) returned one twice: %v", owner, keys)
	}
	return got
}

func setState(t *testing.T, s Store, accountID, id, state, reason string) {
	t.Helper()
	if err := s.SetSubscriptionState(t.Context(), accountID, id, state, reason); err != nil {
		t.Fatalf("SetSubscriptionState(%s, %s, %s): %v", accountID, id, state, err)
	}
}

func saveDelivery(t *testing.T, s Store, p *herald.DeliveryProgress) {
	t.Helper()
	if err := s.SaveDelivery(t.Context(), p); err != nil {
		t.Fatalf("SaveDelivery(%s, %s by %s): %v", p.AccountID, p.SubscriptionID, p.Owner, err)
	}
}

// wantSaveRefused checks that SaveDelivery refuses p, as a lease lost,
// and that it wrote no event.
func wantSaveRefused(t *testing.T, s Store, what string, p *herald.DeliveryProgress) {
	t.Helper()
	before := lastSeq(t, s, p.AccountID)
	err := s.SaveDelivery(t.Context(), p)
	wantCode(t, what, err, herald.ECONFLICT)
	if got := newEvents(t, s, p.AccountID, before); len(got) != 0 {
		t.Errorf("%s was refused but wrote %s", what, fmtSystemEvents(got))
	}
}

func dueMessages(t *testing.T, s Store, accountID, id string, now time.Time, limit int) []*herald.Message {
	t.Helper()
	got, err := s.DueMessages(t.Context(), accountID, id, now, limit)
	return must(t, got, err, "DueMessages(%s, %s)", accountID, id)
}

func findMessages(t *testing.T, s Store, accountID, id string, f herald.MessageFilter) []*herald.Message {
	t.Helper()
	got, err := s.FindMessages(t.Context(), accountID, id, f)
	return must(t, got, err, "FindMessages(%s, %s, %+v)", accountID, id, f)
}

func findAttempts(t *testing.T, s Store, accountID, id string, f herald.AttemptFilter) []*herald.Attempt {
	t.Helper()
	got, err := s.FindAttempts(t.Context(), accountID, id, f)
	return must(t, got, err, "FindAttempts(%s, %s, %+v)", accountID, id, f)
}

// attempt is an attempt of sub at at, with the given outcome and status.
func attempt(sub, eventID string, seq int64, number int, at time.Time, outcome string, status int) *herald.Attempt {
	return &herald.Attempt{SubscriptionID: sub, EventID: eventID, Seq: seq, Number: number, At: at, Outcome: outcome, StatusCode: status, LatencyMicros: int64(number) * 1000}
}

// message is a message of sub made at created.
func message(sub, eventID string, seq int64, state string, attempts int, next, created time.Time) *herald.Message {
	return &herald.Message{SubscriptionID: sub, EventID: eventID, Seq: seq, State: state, Attempts: attempts,
		NextAttemptAt: next, CreatedAt: created, UpdatedAt: created}
}

// wantCursor checks sub_1's cursor and failure of account acme.
func wantCursor(t *testing.T, s Store, id string, cursor int64, failing *time.Time) {
	t.Helper()
	got := findSub(t, s, "acme", id)
	if got.Cursor != cursor || (got.FailingSince == nil) != (failing == nil) || (failing != nil && !got.FailingSince.Equal(*failing)) {
		t.Errorf("%s: cursor %d, failing since %v; want cursor %d, failing since %v", id, got.Cursor, got.FailingSince, cursor, failing)
	}
}

// wantMessages checks the messages of an acme subscription, by seq, but
// for UpdatedAt.
func wantMessages(t *testing.T, what string, s Store, id string, want []*herald.Message) {
	t.Helper()
	got := findMessages(t, s, "acme", id, herald.MessageFilter{Limit: 1000})
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b *herald.Message) int { return int(a.Seq - b.Seq) })
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = sameMessage(got[i], want[i])
	}
	if !ok {
		t.Errorf("messages of %s %s:\n%s\nwant\n%s", id, what, fmtMessages(got), fmtMessages(want))
	}
}

func sameMessage(got, want *herald.Message) bool {
	return got.SubscriptionID == want.SubscriptionID && got.EventID == want.EventID && got.Seq == want.Seq &&
		got.OrderKey == want.OrderKey && got.State == want.State && got.Attempts == want.Attempts &&
		got.NextAttemptAt.Equal(want.NextAttemptAt) && got.LastStatus == want.LastStatus && got.LastError == want.LastError &&
		got.CreatedAt.Equal(want.CreatedAt)
}

// wantAttempts checks that got, newest first, are the attempts of want,
// saved in that order (those of one commit in any order), with ids.
func wantAttempts(t *testing.T, what string, got, want []*herald.Attempt) {
	t.Helper()
	key := func(a *herald.Attempt) string { return fmt.Sprintf("%s#%d", a.EventID, a.Number) }
	byKey := map[string]*herald.Attempt{}
	for _, a := range want {
		byKey[key(a)] = a
	}
	if len(got) != len(want) {
		t.Errorf("attempts %s: got %d (%v), want %d", what, len(got), idsOf(got, key), len(want))
	}
	ids := map[int64]bool{}
	for _, g := range got {
		w := byKey[key(g)]
		if g.ID <= 0 || ids[g.ID] {
			t.Errorf("attempts %s: %s has id %d; want a positive id of its own", what, key(g), g.ID)
		}
		ids[g.ID] = true
		if w == nil || g.SubscriptionID != w.SubscriptionID || g.Seq != w.Seq || !g.At.Equal(w.At) || g.Outcome != w.Outcome ||
			g.StatusCode != w.StatusCode || g.LatencyMicros != w.LatencyMicros || g.Error != w.Error || g.Response != w.Response {
			t.Errorf("attempts %s: got %s, want %s", what, fmtAttempt(g), fmtAttempt(w))
		}
	}
}

func fmtAttempt(a *herald.Attempt) string {
	if a == nil {
		return "none"
	}
	return fmt.Sprintf("{ID:%d Sub:%s Event:%s Seq:%d #%d At:%s %s %d %dµs Error:%q Response:%q}", a.ID, a.SubscriptionID, a.EventID, a.Seq,
		a.Number, a.At.UTC().Format(time.RFC3339Nano), a.Outcome, a.StatusCode, a.LatencyMicros, a.Error, a.Response)
}

func msgSeqs(list []*herald.Message) []int64 {
	out := make([]int64, len(list))
	for i, m := range list {
		out[i] = m.Seq
	}
	return out
}

func fmtMessage(m *herald.Message) string {
	next := "-"
	if !m.NextAttemptAt.IsZero() {
		next = m.NextAttemptAt.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("{%s seq %d %s key %q %s attempts %d next %s last %d %q created %s}", m.SubscriptionID, m.Seq, m.EventID,
		m.OrderKey, m.State, m.Attempts, next, m.LastStatus, m.LastError, m.CreatedAt.UTC().Format(time.RFC3339Nano))
}

func fmtMessages(list []*herald.Message) string {
	parts := make([]string, len(list))
	for i, m := range list {
		parts[i] = "  " + fmtMessage(m)
	}
	return strings.Join(parts, "\n")
}

// isSubset reports whether every one of sub is in of.
func isSubset(sub, of []string) bool {
	for _, s := range sub {
		if !slices.Contains(of, s) {
			return false
		}
	}
	return true
}

// testPruneAttempts: the attempt log's retention deletes the oldest
// attempts of every account, a limit at a time, and nothing newer.
func testPruneAttempts(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	createSub(t, s, ctx, hookSub("acme", "sub_1"))
	createSub(t, s, ctx, hookSub("globex", "sub_1"))
	t0 := baseTime.Add(time.Hour)
	lease(t, s, "A", t0, time.Hour, 10)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	for i := 1; i <= 4; i++ {
		for _, acct := range []string{"acme", "globex"} {
			saveDelivery(t, s, &herald.DeliveryProgress{AccountID: acct, SubscriptionID: "sub_1", Owner: "A", Attempts: []*herald.Attempt{
				attempt("sub_1", fmt.Sprint("ev-", i), int64(i), 1, sec(i), herald.AttemptDelivered, 200),
			}})
		}
	}
	if _, err := s.PruneAttempts(ctx, sec(3), 0); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("PruneAttempts(limit 0) = %v, want EINVALID", err)
	}
	// Four attempts are older than sec(3): two of each account.
	if n, err := s.PruneAttempts(ctx, sec(3), 3); err != nil || n != 3 {
		t.Fatalf("PruneAttempts(limit 3) = %d, %v; want 3", n, err)
	}
	if n, err := s.PruneAttempts(ctx, sec(3), 100); err != nil || n != 1 {
		t.Fatalf("PruneAttempts again = %d, %v; want the last 1", n, err)
	}
	if n, err := s.PruneAttempts(ctx, sec(3), 100); err != nil || n != 0 {
		t.Fatalf("PruneAttempts with nothing old = %d, %v", n, err)
	}
	for _, acct := range []string{"acme", "globex"} {
		left := findAttempts(t, s, acct, "sub_1", herald.AttemptFilter{Limit: 100})
		if len(left) != 2 || left[0].At.Before(sec(3)) || left[1].At.Before(sec(3)) {
			t.Errorf("%s keeps %d attempts: %+v; want those of sec 3 and 4", acct, len(left), left)
		}
	}
}
