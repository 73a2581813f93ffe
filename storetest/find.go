package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

func testFindEvents(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	// The accounts' own system events come before base; AfterSeq in the
	// table counts from there.
	base := map[string]int64{"acme": quietAccount(t, s, "acme"), "globex": quietAccount(t, s, "globex")}

	hour := func(n int) time.Time { return baseTime.Add(time.Duration(n) * time.Hour) }
	// Each event differs from the others in some filter field; "" leaves
	// the field out.
	seeds := []struct {
		id, category, typ, status, lifecycle, customer, agent, session, primary, origin string
		occurredAt                                                                      time.Time
	}{
		{"e1", "authentication", "userLoggedIn", "succeeded", "L1", "C1", "A1", "S1", "P1", herald.OriginAPI, hour(0)},
		{"e2", "transfers", "singleTransferCreated", "attempted", "L2", "C1", "A2", "S1", "P2", herald.OriginAPI, hour(1)},
		{"e3", "transfers", "singleTransferCreated", "succeeded", "L2", "C2", "A2", "S2", "P2", herald.OriginSystem, hour(2)},
		{"e4", "authentication", "userLoggedOut", "", "", "C2", "", "S2", "", herald.OriginSystem, hour(3)},
		{"e5", "transfers", "singleTransferCreated", "failed", "L3", "C1", "A1", "", "P3", herald.OriginAPI, hour(4)},
	}
	// globex holds the same events under the same ids, told apart by data:
	// no filter may ever return them for acme.
	for _, account := range []string{"acme", "globex"} {
		var events []*herald.Event
		for _, sd := range seeds {
			fields := map[string]any{
				"id": sd.id, "category": sd.category, "type": sd.typ,
				"occurredAt": sd.occurredAt.Format(time.RFC3339Nano),
				"data":       map[string]any{"account": account},
			}
			for name, v := range map[string]string{
				"eventStatus": sd.status, "eventLifecycleId": sd.lifecycle, "coreCustomerId": sd.customer,
				"agentId": sd.agent, "sessionId": sd.session, "primaryId": sd.primary,
			} {
				if v != "" {
					fields[name] = v
				}
			}
			b, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, rawEvent(t, string(b), hour(10), sd.origin))
		}
		appendOne(t, s, account, events...)
	}

	all := herald.EventFilter{Limit: 100}
	with := variant(all)
	for _, tc := range []struct {
		name    string
		account string
		filter  herald.EventFilter
		want    []string
	}{
		{"no filter", "acme", all, []string{"e1", "e2", "e3", "e4", "e5"}},
		{"category", "acme", with(func(f *herald.EventFilter) { f.Category = "transfers" }), []string{"e2", "e3", "e5"}},
		{"type", "acme", with(func(f *herald.EventFilter) { f.Type = "userLoggedIn" }), []string{"e1"}},
		{"eventStatus", "acme", with(func(f *herald.EventFilter) { f.EventStatus = "succeeded" }), []string{"e1", "e3"}},
		{"eventLifecycleId", "acme", with(func(f *herald.EventFilter) { f.EventLifecycleID = "L2" }), []string{"e2", "e3"}},
		{"coreCustomerId", "acme", with(func(f *herald.EventFilter) { f.CoreCustomerID = "C1" }), []string{"e1", "e2", "e5"}},
		{"agentId", "acme", with(func(f *herald.EventFilter) { f.AgentID = "A2" }), []string{"e2", "e3"}},
		{"sessionId", "acme", with(func(f *herald.EventFilter) { f.SessionID = "S2" }), []string{"e3", "e4"}},
		{"primaryId", "acme", with(func(f *herald.EventFilter) { f.PrimaryID = "P2" }), []string{"e2", "e3"}},
		{"origin", "acme", with(func(f *herald.EventFilter) { f.Origin = herald.OriginSystem }), []string{"e3", "e4"}},
		{"occurredAfter is inclusive", "acme", with(func(f *herald.EventFilter) { f.OccurredAfter = hour(1) }), []string{"e2", "e3", "e4", "e5"}},
		{"occurredBefore is exclusive", "acme", with(func(f *herald.EventFilter) { f.OccurredBefore = hour(1) }), []string{"e1"}},
		{"occurred range", "acme", with(func(f *herald.EventFilter) { f.OccurredAfter, f.OccurredBefore = hour(1), hour(3) }), []string{"e2", "e3"}},
		{"occurred range in another zone", "acme", with(func(f *herald.EventFilter) {
			zone := time.FixedZone("UTC+5", 5*3600)
			f.OccurredAfter, f.OccurredBefore = hour(1).In(zone), hour(3).In(zone)
		}), []string{"e2", "e3"}},
		{"afterSeq", "acme", with(func(f *herald.EventFilter) { f.AfterSeq = 3 }), []string{"e4", "e5"}},
		{"afterSeq past the end", "acme", with(func(f *herald.EventFilter) { f.AfterSeq = 5 }), nil},
		{"limit", "acme", with(func(f *herald.EventFilter) { f.Limit = 2 }), []string{"e1", "e2"}},
		{"limit and afterSeq page on", "acme", with(func(f *herald.EventFilter) { f.Limit, f.AfterSeq = 2, 2 }), []string{"e3", "e4"}},
		{"category and customer", "acme", with(func(f *herald.EventFilter) {
			f.Category, f.CoreCustomerID = "transfers", "C1"
		}), []string{"e2", "e5"}},
		{"category, status and origin", "acme", with(func(f *herald.EventFilter) {
			f.Category, f.EventStatus, f.Origin = "transfers", "succeeded", herald.OriginSystem
		}), []string{"e3"}},
		{"type, session and time", "acme", with(func(f *herald.EventFilter) {
			f.Type, f.SessionID, f.OccurredAfter = "singleTransferCreated", "S1", hour(1)
		}), []string{"e2"}},
		{"filters, afterSeq and limit", "acme", with(func(f *herald.EventFilter) {
			f.Category, f.AfterSeq, f.Limit = "transfers", 2, 1
		}), []string{"e3"}},
		{"every field", "acme", herald.EventFilter{
			Category: "transfers", Type: "singleTransferCreated", EventStatus: "succeeded", EventLifecycleID: "L2",
			CoreCustomerID: "C2", AgentID: "A2", SessionID: "S2", PrimaryID: "P2", Origin: herald.OriginSystem,
			OccurredAfter: hour(2), OccurredBefore: hour(3), AfterSeq: 2, Limit: 10,
		}, []string{"e3"}},
		{"no match", "acme", with(func(f *herald.EventFilter) { f.Category = "nothing" }), nil},
		{"fields that match apart but not together", "acme", with(func(f *herald.EventFilter) {
			f.Type, f.AgentID = "userLoggedIn", "A2"
		}), nil},
		{"unknown account", "nobody", all, nil},
		{"other account", "globex", with(func(f *herald.EventFilter) { f.CoreCustomerID = "C2" }), []string{"e3", "e4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.filter.AfterSeq += base[tc.account]
			got, err := s.FindEvents(t.Context(), tc.account, tc.filter)
			if err != nil {
				t.Fatalf("FindEvents: %v", err)
			}
			if !slices.Equal(ids(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("FindEvents(%s, %+v) = %v, want %v", tc.account, tc.filter, ids(got), tc.want)
			}
			for i, e := range got {
				if i > 0 && e.Seq <= got[i-1].Seq {
					t.Errorf("event %s (seq %d) comes after seq %d: not ordered by seq", e.ID, e.Seq, got[i-1].Seq)
				}
				if e.AccountID != tc.account || !bytes.Contains(e.Body, []byte(`"account":"`+tc.account+`"`)) {
					t.Errorf("event %s: account %q, body %s; want %s's", e.ID, e.AccountID, e.Body, tc.account)
				}
			}
			bodiesOnly := tc.filter
			bodiesOnly.BodiesOnly = true
			bodies, err := s.FindEvents(t.Context(), tc.account, bodiesOnly)
			if err != nil {
				t.Fatalf("FindEvents with BodiesOnly: %v", err)
			}
			if len(bodies) != len(got) {
				t.Fatalf("FindEvents with BodiesOnly found %d events, without %d", len(bodies), len(got))
			}
			for i, e := range bodies {
				if e.Seq != got[i].Seq || e.ID != got[i].ID || e.AccountID != tc.account || !bytes.Equal(e.Body, got[i].Body) {
					t.Errorf("BodiesOnly event %d: seq %d id %q account %q body %s; want seq %d id %q body %s",
						i, e.Seq, e.ID, e.AccountID, e.Body, got[i].Seq, got[i].ID, got[i].Body)
				}
			}
		})
	}

	t.Run("limit must be positive", func(t *testing.T) {
		t.Parallel()
		for _, limit := range []int{0, -1} {
			if _, err := s.FindEvents(t.Context(), "acme", herald.EventFilter{Limit: limit}); err == nil {
				t.Errorf("FindEvents with Limit %d: no error", limit)
			}
		}
	})
}

// testFindEventsByTime pages through thousands of events, most stored in
// the order they occurred and some far out of it, with time filters, and
// compares every page with the answer worked out here: a store may index
// time in any way, but must find exactly these events.
func testFindEventsByTime(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	base := quietAccount(t, s, "acme")
	newAccount(t, s, "globex")

	const n = 3000
	occurred := make([]time.Time, n+1) // by seq
	var batch []*herald.Event
	for seq := 1; seq <= n; seq++ {
		at := baseTime.Add(time.Duration(seq) * time.Minute)
		switch {
		case seq%97 == 0:
			at = baseTime.Add(-time.Duration(seq) * time.Hour) // long before
		case seq%89 == 0:
			at = baseTime.Add(time.Duration(n+seq) * time.Hour) // long after
		}
		occurred[seq] = at
		category := "even"
		if seq%2 == 1 {
			category = "odd"
		}
		raw := fmt.Sprintf(`{"id":"e%d","category":%q,"type":"tick","occurredAt":%q}`, seq, category, at.Format(time.RFC3339Nano))
		batch = append(batch, rawEvent(t, raw, baseTime, herald.OriginAPI))
		if len(batch) == 500 {
			appendOne(t, s, "acme", batch...)
			batch = nil
		}
	}
	// The other account has events at the same times: never returned.
	appendOne(t, s, "globex", loginEvent(t, "e1", "x", baseTime))

	minute := func(m int) time.Time { return baseTime.Add(time.Duration(m) * time.Minute) }
	for _, tc := range []struct {
		name     string
		filter   herald.EventFilter
		category string
	}{
		{"after, early", herald.EventFilter{OccurredAfter: minute(10)}, ""},
		{"after, late", herald.EventFilter{OccurredAfter: minute(2500)}, ""},
		{"before", herald.EventFilter{OccurredBefore: minute(300)}, ""},
		{"narrow range, late", herald.EventFilter{OccurredAfter: minute(2900), OccurredBefore: minute(2950)}, ""},
		{"wide range", herald.EventFilter{OccurredAfter: minute(100), OccurredBefore: minute(2800)}, ""},
		{"range across block-sized runs", herald.EventFilter{OccurredAfter: minute(1000), OccurredBefore: minute(2100)}, ""},
		{"only the events long before", herald.EventFilter{OccurredBefore: baseTime}, ""},
		{"only the events long after", herald.EventFilter{OccurredAfter: minute(n + 1)}, ""},
		{"range and category", herald.EventFilter{OccurredAfter: minute(1500), OccurredBefore: minute(2600), Category: "odd"}, "odd"},
		{"range that matches nothing", herald.EventFilter{OccurredAfter: minute(-50), OccurredBefore: minute(-40)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var want []string
			for seq := 1; seq <= n; seq++ {
				at := occurred[seq]
				if (tc.filter.OccurredAfter.IsZero() || !at.Before(tc.filter.OccurredAfter)) &&
					(tc.filter.OccurredBefore.IsZero() || at.Before(tc.filter.OccurredBefore)) &&
					(tc.category == "" || tc.category == "odd" && seq%2 == 1) {
					want = append(want, fmt.Sprintf("e%d", seq))
				}
			}
			for _, limit := range []int{1000, 50} {
				// The account's own system events, before base, occurred
				// when it was made: not the case's.
				f := tc.filter
				f.Limit, f.AfterSeq = limit, base
				var got []string
				for page := 0; ; page++ {
					events, err := s.FindEvents(t.Context(), "acme", f)
					if err != nil {
						t.Fatalf("FindEvents(%+v): %v", f, err)
					}
					if len(events) > limit {
						t.Fatalf("FindEvents(%+v): %d events, more than the limit", f, len(events))
					}
					got = append(got, ids(events)...)
					if len(events) < limit || page > n {
						break
					}
					f.AfterSeq = events[len(events)-1].Seq
				}
				if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Fatalf("paging by %d: got %d events %v,\nwant %d %v", limit, len(got), clip(got), len(want), clip(want))
				}
			}
		})
	}
}

// clip shortens a long list of ids for a failure message.
func clip(ids []string) []string {
	if len(ids) <= 12 {
		return ids
	}
	return append(slices.Clip(ids[:6]), append([]string{"…"}, ids[len(ids)-6:]...)...)
}
