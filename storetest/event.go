package storetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

func testEvents(t *testing.T, newDB NewDatabase) {
	t.Run("SeqPerAccount", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := map[string]int64{"acme": quietAccount(t, s, "acme"), "globex": quietAccount(t, s, "globex")}
		now := baseTime.Add(time.Minute)

		// One call, two accounts: each account counts on from its own
		// last seq, and both may use the same event id.
		acme := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{
			loginEvent(t, "a1", "x", now), loginEvent(t, "shared", "acme", now), loginEvent(t, "a3", "x", now),
		}}
		globex := &herald.AppendBatch{AccountID: "globex", Events: []*herald.Event{
			loginEvent(t, "shared", "globex", now), loginEvent(t, "g2", "x", now),
		}}
		if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{acme, globex}); err != nil {
			t.Fatalf("AppendEvents: %v", err)
		}
		for i, r := range acme.Results {
			wantStored(t, "acme event "+acme.Events[i].ID, r, base["acme"]+int64(i+1), now)
		}
		for i, r := range globex.Results {
			wantStored(t, "globex event "+globex.Events[i].ID, r, base["globex"]+int64(i+1), now)
		}

		// A later call goes on where the account stopped.
		later := now.Add(time.Second)
		res := appendOne(t, s, "acme", loginEvent(t, "a4", "x", later), loginEvent(t, "a5", "x", later))
		wantStored(t, "acme a4", res[0], base["acme"]+4, later)
		wantStored(t, "acme a5", res[1], base["acme"]+5, later)
		res = appendOne(t, s, "globex", loginEvent(t, "g3", "x", later))
		wantStored(t, "globex g3", res[0], base["globex"]+3, later)

		// The shared id names a different event in each account.
		for _, account := range []string{"acme", "globex"} {
			e, err := s.FindEventByID(t.Context(), account, "shared")
			if err != nil {
				t.Fatalf("FindEventByID(%s, shared): %v", account, err)
			}
			if e.AccountID != account || !bytes.Contains(e.Data, []byte(account)) {
				t.Errorf("FindEventByID(%s, shared) = account %q data %s", account, e.AccountID, e.Data)
			}
			// The content hash comes back too: callers tell a resend of
			// the same event from a conflict by it.
			sent := acme.Events[1]
			if account == "globex" {
				sent = globex.Events[0]
			}
			if e.Hash != sent.Hash {
				t.Errorf("FindEventByID(%s, shared).Hash = %q, want the hash it was stored with, %q", account, e.Hash, sent.Hash)
			}
		}
		wantSeqs(t, s, "acme", base["acme"], []string{"a1", "shared", "a3", "a4", "a5"})
		wantSeqs(t, s, "globex", base["globex"], []string{"shared", "g2", "g3"})
	})

	t.Run("Duplicate", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		first := baseTime.Add(time.Minute)
		appendOne(t, s, "acme", loginEvent(t, "e1", "x", first))
		appendOne(t, s, "acme", loginEvent(t, "e2", "x", first))

		// Sent again later with the same content: the original seq and
		// receivedAt come back and nothing new is stored.
		res := appendOne(t, s, "acme", loginEvent(t, "e1", "x", first.Add(time.Hour)))
		wantDuplicate(t, "e1 again", res[0], base+1, first)
		res = appendOne(t, s, "acme", loginEvent(t, "e3", "x", first.Add(time.Hour)))
		wantStored(t, "e3 after the duplicate", res[0], base+3, first.Add(time.Hour))
		wantSeqs(t, s, "acme", base, []string{"e1", "e2", "e3"})
	})

	t.Run("Conflict", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		appendOne(t, s, "acme", loginEvent(t, "e1", "x", now))

		// Same id, different content: refused, naming the id, and the
		// stored event is untouched.
		res := appendOne(t, s, "acme", loginEvent(t, "e1", "changed", now.Add(time.Second)))
		wantConflict(t, "e1 with other content", res[0], "e1")
		e, err := s.FindEventByID(t.Context(), "acme", "e1")
		if err != nil {
			t.Fatalf("FindEventByID(e1): %v", err)
		}
		if !bytes.Contains(e.Data, []byte(`"x"`)) {
			t.Errorf("e1 data = %s, want the original", e.Data)
		}
		// The refused event took no seq.
		res = appendOne(t, s, "acme", loginEvent(t, "e2", "x", now))
		wantStored(t, "e2", res[0], base+2, now)
	})

	t.Run("DuplicatesWithinBatch", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		res := appendOne(t, s, "acme",
			loginEvent(t, "a", "x", now),
			loginEvent(t, "a", "x", now.Add(time.Second)),
			loginEvent(t, "b", "x", now),
			loginEvent(t, "a", "other", now),
			loginEvent(t, "b", "x", now),
		)
		wantStored(t, "a", res[0], base+1, now)
		wantDuplicate(t, "a again", res[1], base+1, now)
		wantStored(t, "b", res[2], base+2, now)
		wantConflict(t, "a with other content", res[3], "a")
		wantDuplicate(t, "b again", res[4], base+2, now)
		wantSeqs(t, s, "acme", base, []string{"a", "b"})
	})

	t.Run("DuplicatesAcrossBatches", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		b1 := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{loginEvent(t, "a", "x", now)}}
		b2 := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{
			loginEvent(t, "a", "x", now.Add(time.Second)), loginEvent(t, "c", "x", now.Add(time.Second)),
		}}
		b3 := &herald.AppendBatch{AccountID: "acme", Atomic: true, Events: []*herald.Event{
			loginEvent(t, "c", "x", now.Add(2*time.Second)), loginEvent(t, "d", "x", now.Add(2*time.Second)),
		}}
		b4 := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{loginEvent(t, "a", "other", now)}}
		if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b1, b2, b3, b4}); err != nil {
			t.Fatalf("AppendEvents: %v", err)
		}
		wantStored(t, "batch 1: a", b1.Results[0], base+1, now)
		wantDuplicate(t, "batch 2: a", b2.Results[0], base+1, now)
		wantStored(t, "batch 2: c", b2.Results[1], base+2, now.Add(time.Second))
		// A duplicate does not make an atomic batch fail.
		wantDuplicate(t, "batch 3 (atomic): c", b3.Results[0], base+2, now.Add(time.Second))
		wantStored(t, "batch 3 (atomic): d", b3.Results[1], base+3, now.Add(2*time.Second))
		wantConflict(t, "batch 4: a with other content", b4.Results[0], "a")
		wantSeqs(t, s, "acme", base, []string{"a", "c", "d"})
	})

	t.Run("AtomicBatch", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		appendOne(t, s, "acme", loginEvent(t, "x", "x", now))

		later := now.Add(time.Second)
		atomic := &herald.AppendBatch{AccountID: "acme", Atomic: true, Events: []*herald.Event{
			loginEvent(t, "n1", "x", later), loginEvent(t, "x", "other", later), loginEvent(t, "n2", "x", later),
		}}
		loose := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{
			loginEvent(t, "g1", "x", later), loginEvent(t, "x", "other", later), loginEvent(t, "g2", "x", later),
			// n1 was not stored by the failed atomic batch: here it is new.
			loginEvent(t, "n1", "x", later),
		}}
		if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{atomic, loose}); err != nil {
			t.Fatalf("AppendEvents: %v", err)
		}
		wantConflict(t, "atomic n1", atomic.Results[0], "")
		wantConflict(t, "atomic x", atomic.Results[1], "x")
		wantConflict(t, "atomic n2", atomic.Results[2], "")
		wantStored(t, "loose g1", loose.Results[0], base+2, later)
		wantConflict(t, "loose x", loose.Results[1], "x")
		wantStored(t, "loose g2", loose.Results[2], base+3, later)
		wantStored(t, "loose n1", loose.Results[3], base+4, later)
		_, err := s.FindEventByID(t.Context(), "acme", "n2")
		wantCode(t, "FindEventByID(n2 of the failed atomic batch)", err, herald.ENOTFOUND)

		// No seq was lost to the failed batch.
		res := appendOne(t, s, "acme", loginEvent(t, "n2", "x", later))
		wantStored(t, "n2 sent again", res[0], base+5, later)
		wantSeqs(t, s, "acme", base, []string{"x", "g1", "g2", "n1", "n2"})
	})

	t.Run("UnknownAccount", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		ok := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{loginEvent(t, "a", "x", now)}}
		bad := &herald.AppendBatch{AccountID: "nobody", Events: []*herald.Event{loginEvent(t, "b", "x", now)}}
		if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{ok, bad}); err == nil {
			t.Fatal("AppendEvents to an unknown account: no error")
		}
		// An error means nothing was stored, not even the good batch.
		wantSeqs(t, s, "acme", base, nil)
	})

	t.Run("BodyRoundTrip", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		newAccount(t, s, "globex")
		// Data with keys out of order, unicode, characters HTML escaping
		// would touch, and numbers no float64 holds.
		const data = `{"zeta":1,"alpha":{"y":"ünïcødé 😀 <b>&amp;</b>","x":[12345678901234567890.123,2.50,-0,1e400]},"empty":{},"nil":null}`
		raw := `{"id":"ev-1","category":"transfers","type":"singleTransferCreated",
			"occurredAt":"2026-03-01T10:00:00.123456789+02:00",
			"agentId":"agent-7","agentType":"customer","coreCustomerId":"cust-1","customerSerialId":"serial-9",
			"host":"10.0.0.1","primaryId":"acct-1","secondaryId":"acct-2","sessionId":"sess-1",
			"event_status":"attempted","event_lifecycle_id":"life-1",
			"data":  ` + data + `}`
		e := rawEvent(t, raw, baseTime.Add(time.Minute), herald.OriginAPI)
		res := appendOne(t, s, "acme", e)
		wantStored(t, "ev-1", res[0], base+1, e.ReceivedAt)
		// Herald knows no session sess-1: the event is stored all the
		// same, flagged.
		if !slices.Equal(res[0].Flags, []string{herald.FlagSessionUnknown}) || res[0].SessionID != "sess-1" {
			t.Errorf("ev-1: result flags %q, session %q; want [%s], sess-1", res[0].Flags, res[0].SessionID, herald.FlagSessionUnknown)
		}

		// The body is the event as stored: with its seq and flags, encoded
		// by MarshalEvent.
		want := *e
		want.Seq, want.Flags = base+1, []string{herald.FlagSessionUnknown}
		wantBody, err := herald.MarshalEvent(&want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.FindEventByID(t.Context(), "acme", "ev-1")
		if err != nil {
			t.Fatalf("FindEventByID: %v", err)
		}
		if !bytes.Equal(got.Body, wantBody) {
			t.Errorf("Body =\n%s\nwant\n%s", got.Body, wantBody)
		}
		if string(got.Data) != data {
			t.Errorf("Data =\n%s\nwant, byte for byte,\n%s", got.Data, data)
		}
		if got.ID != "ev-1" || got.Seq != base+1 || got.AccountID != "acme" || got.Category != "transfers" ||
			got.Type != "singleTransferCreated" || !got.OccurredAt.Equal(e.OccurredAt) ||
			!got.ReceivedAt.Equal(e.ReceivedAt) || got.AgentID != "agent-7" || got.AgentType != "customer" ||
			got.CoreCustomerID != "cust-1" || got.CustomerSerialID != "serial-9" || got.Host != "10.0.0.1" ||
			got.PrimaryID != "acct-1" || got.SecondaryID != "acct-2" || got.SessionID != "sess-1" ||
			got.EventStatus != "attempted" || got.EventLifecycleID != "life-1" || got.Origin != herald.OriginAPI ||
			!slices.Equal(got.Flags, []string{herald.FlagSessionUnknown}) || got.ChainHash != "" {
			t.Errorf("FindEventByID = %+v,\nwant the fields of %+v", got, e)
		}
		// Re-encoding what was read gives the body again: readers may
		// serve either.
		again := *got
		again.Body = nil
		if b, err := herald.MarshalEvent(&again); err != nil || !bytes.Equal(b, got.Body) {
			t.Errorf("MarshalEvent(found event) =\n%s (%v)\nwant the body\n%s", b, err, got.Body)
		}
		// FindEvents returns the same body.
		list, err := s.FindEvents(t.Context(), "acme", herald.EventFilter{AfterSeq: base, Limit: 10})
		if err != nil || len(list) != 1 || !bytes.Equal(list[0].Body, wantBody) || list[0].AccountID != "acme" {
			t.Errorf("FindEvents = %v, %v; want the one event with the same body", ids(list), err)
		}

		_, err = s.FindEventByID(t.Context(), "globex", "ev-1")
		wantCode(t, "FindEventByID(another account's event)", err, herald.ENOTFOUND)
		_, err = s.FindEventByID(t.Context(), "acme", "ev-unknown")
		wantCode(t, "FindEventByID(unknown id)", err, herald.ENOTFOUND)
	})
}

// wantSeqs checks that the events of the account after seq base have
// seqs base+1, base+2, … without gaps, and that those a client sent (not
// of origin system) are exactly the events with these ids, in this order.
// Where a case wrote no system event after base, that is: the account
// holds these events at seqs base+1, base+2, ….
func wantSeqs(t *testing.T, s herald.EventService, accountID string, base int64, wantIDs []string) {
	t.Helper()
	got := allEvents(t, s, accountID, herald.EventFilter{AfterSeq: base})
	var sent []*herald.Event
	for i, e := range got {
		if e.Seq != base+int64(i+1) {
			t.Errorf("event %s of %s has seq %d, want %d", e.ID, accountID, e.Seq, base+int64(i+1))
		}
		if e.Origin != herald.OriginSystem {
			sent = append(sent, e)
		}
	}
	if !slices.Equal(ids(sent), wantIDs) && !(len(sent) == 0 && len(wantIDs) == 0) {
		t.Errorf("events of %s after seq %d = %v, want %v", accountID, base, ids(sent), wantIDs)
	}
}
