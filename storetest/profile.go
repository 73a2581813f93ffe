package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

func testProfiles(t *testing.T, newDB NewDatabase) {
	login := builtinType(t, "authentication", "login")
	loggedIn := builtinType(t, "authentication", "userLoggedIn")

	t.Run("LoginAttemptedThenSucceeded", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		r1, r2, r3 := baseTime.Add(time.Minute), baseTime.Add(2*time.Minute), baseTime.Add(3*time.Minute)

		// attempted does not persist: the profile counts the event only.
		appendOne(t, s, "acme", typedEvent(t, login, map[string]any{
			"id": "att", "eventStatus": "attempted", "coreCustomerId": "C1", "occurredAt": sec(0),
			"data": map[string]any{"external_login_id": "L1", "ip_address": "10.0.0.1", "login_method": "password"},
		}, r1))
		want := &herald.Profile{
			ID: "C1", AccountID: "acme", Attributes: map[string]herald.Attribute{},
			FirstSeenAt: sec(0), LastSeenAt: sec(0), EventCount: 1,
			Counts:   map[string]int64{"authentication/login": 1},
			FirstSeq: base + 1, LastSeq: base + 1, CreatedAt: r1, UpdatedAt: r1,
		}
		wantProfile(t, "after attempted", findProfile(t, s, "acme", "C1"), want)

		// succeeded persists every top-level field of its data.
		appendOne(t, s, "acme", typedEvent(t, login, map[string]any{
			"id": "ok", "eventStatus": "succeeded", "coreCustomerId": "C1", "occurredAt": sec(5),
			"data": map[string]any{"external_login_id": "L1", "ip_address": "10.0.0.2", "device_id": "d-1"},
		}, r2))
		attr := func(value, eventID string, seq int64, at time.Time) herald.Attribute {
			return herald.Attribute{Value: json.RawMessage(value), EventID: eventID, Seq: base + seq, OccurredAt: at}
		}
		want.Attributes = map[string]herald.Attribute{
			"external_login_id": attr(`"L1"`, "ok", 2, sec(5)),
			"ip_address":        attr(`"10.0.0.2"`, "ok", 2, sec(5)),
			"device_id":         attr(`"d-1"`, "ok", 2, sec(5)),
		}
		want.LastSeenAt, want.EventCount, want.LastSeq, want.UpdatedAt = sec(5), 2, base+2, r2
		want.Counts["authentication/login"] = 2
		wantProfile(t, "after succeeded", findProfile(t, s, "acme", "C1"), want)

		// The same entity by agentId: userLoggedIn persists only the fields
		// it lists. An unregistered type counts and persists nothing. An
		// agent that is not a customer is no entity; coreCustomerId wins
		// over a customer agent.
		appendOne(t, s, "acme",
			typedEvent(t, loggedIn, map[string]any{
				"id": "in", "agentId": "C1", "agentType": "customer", "occurredAt": sec(-10),
				"data": map[string]any{"browser": "Firefox 132", "operatingSystem": "macOS 15", "extra": true},
			}, r3),
			event(t, map[string]any{
				"id": "note", "category": "custom", "type": "note", "coreCustomerId": "C1",
				"occurredAt": sec(20).Format(time.RFC3339Nano), "data": map[string]any{"note": "kept out"},
			}, r3),
			event(t, map[string]any{
				"id": "emp", "category": "custom", "type": "note", "agentId": "C1", "agentType": "employee",
				"occurredAt": sec(30).Format(time.RFC3339Nano),
			}, r3),
			event(t, map[string]any{
				"id": "both", "category": "custom", "type": "note", "agentId": "C1", "agentType": "customer",
				"coreCustomerId": "C2", "occurredAt": sec(30).Format(time.RFC3339Nano),
			}, r3),
		)
		want.Attributes["browser"] = attr(`"Firefox 132"`, "in", 3, sec(-10))
		want.Attributes["operatingSystem"] = attr(`"macOS 15"`, "in", 3, sec(-10))
		want.FirstSeenAt, want.LastSeenAt, want.EventCount, want.LastSeq, want.UpdatedAt = sec(-10), sec(20), 4, base+4, r3
		want.Counts["authentication/userLoggedIn"] = 1
		want.Counts["custom/note"] = 1
		wantProfile(t, "after the others", findProfile(t, s, "acme", "C1"), want)

		c2 := findProfile(t, s, "acme", "C2")
		if c2.EventCount != 1 || c2.FirstSeq != base+6 || len(c2.Attributes) != 0 {
			t.Errorf("profile C2 = %d events, first seq %d, attributes %v; want event both (seq %d) only, no attributes",
				c2.EventCount, c2.FirstSeq, slices.Sorted(maps.Keys(c2.Attributes)), base+6)
		}
		_, err := s.FindProfile(t.Context(), "acme", "nobody")
		wantCode(t, "FindProfile(unknown)", err, herald.ENOTFOUND)
		newAccount(t, s, "globex")
		_, err = s.FindProfile(t.Context(), "globex", "C1")
		wantCode(t, "FindProfile(another account's profile)", err, herald.ENOTFOUND)
	})

	t.Run("ProfileFieldsAndStatuses", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		now := baseTime.Add(time.Minute)
		// Events without status persist (the type's Persist), draft does
		// not, confirmed does; only the listed fields are written, named
		// by their pointer less /data/.
		def := &herald.EventType{
			Category: "customers", Type: "profileUpdated", Persist: true,
			Statuses: []herald.StatusDef{
				{Name: "draft", Description: "Not yet."},
				{Name: "confirmed", Description: "Done.", Persist: true},
			},
			ProfileFields: []string{"/data/email", "/data/address/city", "/data/a~1b", "/data/missing"},
			AccountID:     "acme",
		}
		silent := &herald.EventType{Category: "customers", Type: "viewed", AccountID: "acme"}
		appendOne(t, s, "acme",
			typedEvent(t, def, map[string]any{
				"id": "p1", "coreCustomerId": "C1", "occurredAt": sec(0),
				"data": map[string]any{"email": "a@example.com", "address": map[string]any{"city": "Oslo", "zip": "0150"}, "a/b": 1, "secret": "s"},
			}, now),
			typedEvent(t, def, map[string]any{
				"id": "p2", "eventStatus": "draft", "coreCustomerId": "C1", "occurredAt": sec(1),
				"data": map[string]any{"email": "draft@example.com"},
			}, now),
			typedEvent(t, def, map[string]any{
				"id": "p3", "eventStatus": "confirmed", "coreCustomerId": "C1", "occurredAt": sec(2),
				"data": map[string]any{"address": map[string]any{"city": "Bergen"}},
			}, now),
			typedEvent(t, silent, map[string]any{
				"id": "p4", "coreCustomerId": "C1", "occurredAt": sec(3), "data": map[string]any{"email": "viewed@example.com"},
			}, now),
		)
		wantProfile(t, "C1", findProfile(t, s, "acme", "C1"), &herald.Profile{
			ID: "C1", AccountID: "acme",
			Attributes: map[string]herald.Attribute{
				"email":        {Value: json.RawMessage(`"a@example.com"`), EventID: "p1", Seq: base + 1, OccurredAt: sec(0)},
				"address/city": {Value: json.RawMessage(`"Bergen"`), EventID: "p3", Seq: base + 3, OccurredAt: sec(2)},
				"a~1b":         {Value: json.RawMessage(`1`), EventID: "p1", Seq: base + 1, OccurredAt: sec(0)},
			},
			FirstSeenAt: sec(0), LastSeenAt: sec(3), EventCount: 4,
			Counts:   map[string]int64{"customers/profileUpdated": 3, "customers/viewed": 1},
			FirstSeq: base + 1, LastSeq: base + 4, CreatedAt: now, UpdatedAt: now,
		})
	})

	t.Run("OutOfOrder", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		base := quietAccount(t, s, "acme")
		r1, r2, r3 := baseTime.Add(time.Minute), baseTime.Add(2*time.Minute), baseTime.Add(3*time.Minute)
		def := &herald.EventType{Category: "customers", Type: "profileUpdated", Persist: true, AccountID: "acme"}
		ev := func(id string, at time.Time, data map[string]any, now time.Time) *herald.Event {
			return typedEvent(t, def, map[string]any{"id": id, "coreCustomerId": "C1", "occurredAt": at, "data": data}, now)
		}
		appendOne(t, s, "acme", ev("new", sec(10), map[string]any{"email": "new@example.com", "phone": "1"}, r1))
		// Older, arriving later: it fills what is missing only.
		appendOne(t, s, "acme", ev("old", sec(0), map[string]any{"email": "old@example.com", "name": "Ann"}, r2))
		// Same occurredAt as new, stored later: the higher seq wins.
		appendOne(t, s, "acme", ev("tie", sec(10), map[string]any{"phone": "2"}, r3))
		wantProfile(t, "C1", findProfile(t, s, "acme", "C1"), &herald.Profile{
			ID: "C1", AccountID: "acme",
			Attributes: map[string]herald.Attribute{
				"email": {Value: json.RawMessage(`"new@example.com"`), EventID: "new", Seq: base + 1, OccurredAt: sec(10)},
				"phone": {Value: json.RawMessage(`"2"`), EventID: "tie", Seq: base + 3, OccurredAt: sec(10)},
				"name":  {Value: json.RawMessage(`"Ann"`), EventID: "old", Seq: base + 2, OccurredAt: sec(0)},
			},
			FirstSeenAt: sec(0), LastSeenAt: sec(10), EventCount: 3,
			Counts:   map[string]int64{"customers/profileUpdated": 3},
			FirstSeq: base + 1, LastSeq: base + 3, CreatedAt: r1, UpdatedAt: r3,
		})
	})
}

func testFindProfiles(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	// AfterSeq in the table counts from base.
	base := map[string]int64{"acme": quietAccount(t, s, "acme"), "globex": quietAccount(t, s, "globex")}
	def := &herald.EventType{
		Category: "customers", Type: "profileUpdated", Persist: true,
		ProfileFields: []string{"/data/city", "/data/tier", "/data/address/city"},
	}
	hour := func(n int) time.Time { return baseTime.Add(time.Duration(n) * time.Hour) }
	now := hour(10)
	ev := func(id string, who map[string]any, at time.Time, data map[string]any) *herald.Event {
		f := map[string]any{"id": id, "occurredAt": at, "data": data}
		maps.Copy(f, who)
		return typedEvent(t, def, f, now)
	}
	c := func(id string) map[string]any { return map[string]any{"coreCustomerId": id} }
	// Profiles are created in the order C1 C2 C3 C4 (seqs 1 to 4). C1 is
	// last seen at hour 5, long after it was first seen; C4 is first seen
	// at hour -2, by an event that arrives last.
	appendOne(t, s, "acme",
		ev("e1", c("C1"), hour(0), map[string]any{"city": "Oslo", "tier": 1}),
		ev("e2", c("C2"), hour(2), map[string]any{"city": "Bergen", "tier": 2}),
		ev("e3", map[string]any{"agentId": "C3", "agentType": "customer"}, hour(3),
			map[string]any{"city": "Oslo", "tier": 2, "address": map[string]any{"city": "Oslo"}}),
		ev("e4", c("C4"), hour(1), map[string]any{"tier": 1}),
		ev("e5", c("C1"), hour(5), map[string]any{"address": map[string]any{"city": "Paris"}}),
		ev("e6", c("C4"), hour(-2), map[string]any{"city": "Bergen"}),
	)
	appendOne(t, s, "globex", ev("e1", c("C1"), hour(0), map[string]any{"city": "Lima", "tier": 3}))

	all := herald.ProfileFilter{Limit: 100}
	with := variant(all)
	attr := func(name, value string) func(f *herald.ProfileFilter) {
		return func(f *herald.ProfileFilter) { f.Attribute, f.Value = name, json.RawMessage(value) }
	}
	for _, tc := range []struct {
		name    string
		account string
		filter  herald.ProfileFilter
		want    []string
	}{
		{"no filter", "acme", all, []string{"C1", "C2", "C3", "C4"}},
		{"seenAfter is inclusive, on last seen", "acme", with(func(f *herald.ProfileFilter) { f.SeenAfter = hour(2) }), []string{"C1", "C2", "C3"}},
		{"seenBefore is exclusive", "acme", with(func(f *herald.ProfileFilter) { f.SeenBefore = hour(2) }), []string{"C4"}},
		{"seen range", "acme", with(func(f *herald.ProfileFilter) { f.SeenAfter, f.SeenBefore = hour(2), hour(4) }), []string{"C2", "C3"}},
		{"seen range in another zone", "acme", with(func(f *herald.ProfileFilter) {
			zone := time.FixedZone("UTC+9", 9*3600)
			f.SeenAfter, f.SeenBefore = hour(2).In(zone), hour(4).In(zone)
		}), []string{"C2", "C3"}},
		{"seen after, first seen long before", "acme", with(func(f *herald.ProfileFilter) { f.SeenAfter = hour(4) }), []string{"C1"}},
		{"seen before, first seen before but last seen after", "acme", with(func(f *herald.ProfileFilter) { f.SeenBefore = hour(0) }), nil},
		{"attribute string", "acme", with(attr("city", `"Oslo"`)), []string{"C1", "C3"}},
		{"attribute set by a late event", "acme", with(attr("city", `"Bergen"`)), []string{"C2", "C4"}},
		{"attribute number", "acme", with(attr("tier", `1`)), []string{"C1", "C4"}},
		{"attribute number 2", "acme", with(attr("tier", `2`)), []string{"C2", "C3"}},
		{"nested attribute", "acme", with(attr("address/city", `"Paris"`)), []string{"C1"}},
		{"nested attribute, other value", "acme", with(attr("address/city", `"Oslo"`)), []string{"C3"}},
		{"attribute value is case sensitive", "acme", with(attr("city", `"oslo"`)), nil},
		{"attribute value is JSON: a string is not a number", "acme", with(attr("tier", `"1"`)), nil},
		{"unknown attribute", "acme", with(attr("country", `"Oslo"`)), nil},
		{"attribute and seen", "acme", with(func(f *herald.ProfileFilter) {
			attr("city", `"Oslo"`)(f)
			f.SeenAfter = hour(4)
		}), []string{"C1"}},
		{"afterSeq", "acme", with(func(f *herald.ProfileFilter) { f.AfterSeq = 1 }), []string{"C2", "C3", "C4"}},
		{"afterSeq past the end", "acme", with(func(f *herald.ProfileFilter) { f.AfterSeq = 4 }), nil},
		{"limit", "acme", with(func(f *herald.ProfileFilter) { f.Limit = 2 }), []string{"C1", "C2"}},
		{"limit and afterSeq page on", "acme", with(func(f *herald.ProfileFilter) { f.Limit, f.AfterSeq = 2, 2 }), []string{"C3", "C4"}},
		{"unknown account", "nobody", all, nil},
		{"other account", "globex", all, []string{"C1"}},
		{"other account, by attribute", "globex", with(attr("city", `"Oslo"`)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.filter.AfterSeq += base[tc.account]
			got, err := s.FindProfiles(t.Context(), tc.account, tc.filter)
			if err != nil {
				t.Fatalf("FindProfiles: %v", err)
			}
			if !slices.Equal(profileIDs(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("FindProfiles(%s, %+v) = %v, want %v", tc.account, tc.filter, profileIDs(got), tc.want)
			}
			for _, p := range got {
				wantProfile(t, "listed "+p.ID, p, findProfile(t, s, tc.account, p.ID))
			}
		})
	}

	t.Run("limit must be positive", func(t *testing.T) {
		t.Parallel()
		for _, limit := range []int{0, -1} {
			_, err := s.FindProfiles(t.Context(), "acme", herald.ProfileFilter{Limit: limit})
			wantCode(t, fmt.Sprintf("FindProfiles with Limit %d", limit), err, herald.EINVALID)
		}
	})

	t.Run("other account's profile of the same id", func(t *testing.T) {
		t.Parallel()
		p := findProfile(t, s, "globex", "C1")
		if p.AccountID != "globex" || string(p.Attributes["city"].Value) != `"Lima"` || p.EventCount != 1 {
			t.Errorf("FindProfile(globex, C1) = account %q city %s, %d events; want globex's: Lima, 1 event",
				p.AccountID, p.Attributes["city"].Value, p.EventCount)
		}
	})
}

func testEraseProfile(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	base := quietAccount(t, s, "acme")
	newAccount(t, s, "globex")
	login := builtinType(t, "authentication", "login")
	loggedIn := builtinType(t, "authentication", "userLoggedIn")
	job := jobType("acme")
	now := baseTime.Add(time.Minute)

	lg := func(id, status, loginID, customer, host string, at time.Time) *herald.Event {
		return typedEvent(t, login, map[string]any{
			"id": id, "eventStatus": status, "coreCustomerId": customer, "host": host, "occurredAt": at,
			"sessionId": "S-" + customer, "primaryId": "P-" + id,
			"data": map[string]any{"external_login_id": loginID, "ip_address": "192.0.2.1", "login_method": "password"},
		}, now)
	}
	// C1's events: a login, an event by agent, a job; C2's login; an
	// event of no entity (though its agent has C1's id); and globex's C1.
	c1 := []*herald.Event{
		lg("a1", "attempted", "L1", "C1", "10.0.0.1", sec(0)),
		lg("a2", "succeeded", "L1", "C1", "10.0.0.1", sec(5)),
		typedEvent(t, loggedIn, map[string]any{
			"id": "a3", "agentId": "C1", "agentType": "customer", "host": "10.0.0.2", "occurredAt": sec(6),
			"data": map[string]any{"browser": "Firefox 132", "operatingSystem": "macOS 15"},
		}, now),
		typedEvent(t, job, map[string]any{
			"id": "j1", "eventLifecycleId": "J1", "eventStatus": "running", "coreCustomerId": "C1", "occurredAt": sec(7),
			"data": map[string]any{"step": 1, "owner": "Ann"},
		}, now),
	}
	others := []*herald.Event{
		lg("b1", "attempted", "L2", "C2", "10.0.0.3", sec(1)),
		lg("b2", "succeeded", "L2", "C2", "10.0.0.3", sec(2)),
		event(t, map[string]any{
			"id": "n1", "category": "custom", "type": "thing", "host": "10.0.0.4", "agentId": "C1", "agentType": "employee",
			"occurredAt": sec(3).Format(time.RFC3339Nano), "data": map[string]any{"about": "C1"},
		}, now),
	}
	res := appendOne(t, s, "acme", append(slices.Clone(c1), others...)...)
	// A lifecycle of C2 that an event of C1 joined: C1's data is in its
	// merged data, so it goes too.
	shared := []*herald.Event{
		typedEvent(t, job, map[string]any{
			"id": "s1", "eventLifecycleId": "SH", "eventStatus": "queued", "coreCustomerId": "C2", "occurredAt": sec(8),
			"data": map[string]any{"by": "C2"},
		}, now),
		typedEvent(t, job, map[string]any{
			"id": "s2", "eventLifecycleId": "SH", "eventStatus": "running", "coreCustomerId": "C1", "occurredAt": sec(9),
			"data": map[string]any{"card": "4111"},
		}, now),
	}
	sharedRes := appendOne(t, s, "acme", shared...)
	theirs := lg("a1", "succeeded", "L1", "C1", "10.0.0.9", sec(0))
	theirsRes := appendOne(t, s, "globex", theirs)

	// What every reader must return once C1 is erased, and for the others.
	stored := func(e *herald.Event, accountID string, r herald.AppendResult) *herald.Event {
		c := *e
		c.Seq, c.AccountID, c.Def, c.Body = r.Seq, accountID, nil, nil
		return &c
	}
	var wantC1, wantOthers []*herald.Event
	for i, e := range c1 {
		r := stored(e, "acme", res[i])
		r.Data, r.Host, r.Redacted = nil, "", true
		wantC1 = append(wantC1, r)
	}
	for i, e := range others {
		wantOthers = append(wantOthers, stored(e, "acme", res[len(c1)+i]))
	}
	wantOthers = append(wantOthers, stored(shared[0], "acme", sharedRes[0]))
	r := stored(shared[1], "acme", sharedRes[1])
	r.Data, r.Host, r.Redacted = nil, "", true
	wantC1 = append(wantC1, r)
	wantByID := map[string]*herald.Event{}
	for _, e := range append(slices.Clone(wantC1), wantOthers...) {
		wantByID[e.ID] = e
	}
	l1, j1, sh := findLifecycle(t, s, "acme", "L1"), findLifecycle(t, s, "acme", "J1"), findLifecycle(t, s, "acme", "SH")
	l2 := findLifecycle(t, s, "acme", "L2")
	c2, globexC1 := findProfile(t, s, "acme", "C2"), findProfile(t, s, "globex", "C1")

	n, err := s.EraseProfile(t.Context(), "acme", "C1")
	if err != nil {
		t.Fatalf("EraseProfile(C1): %v", err)
	}
	if n != int64(len(wantC1)) {
		t.Errorf("EraseProfile(C1) = %d, want %d redacted events", n, len(wantC1))
	}

	for _, want := range append(slices.Clone(wantC1), wantOthers...) {
		got, err := s.FindEventByID(t.Context(), "acme", want.ID)
		if err != nil {
			t.Errorf("FindEventByID(%s) after erasure: %v", want.ID, err)
			continue
		}
		wantEvent(t, "FindEventByID("+want.ID+") after erasure", got, want)
	}
	// The events after base are the case's, and the record of the
	// erasure: a system event that names the entity but holds none of
	// what was erased.
	var list []*herald.Event
	var erasures []*herald.Event
	for _, e := range allEvents(t, s, "acme", herald.EventFilter{AfterSeq: base}) {
		if e.Origin == herald.OriginSystem {
			erasures = append(erasures, e)
		} else {
			list = append(list, e)
		}
	}
	wantIDs := []string{"a1", "a2", "a3", "j1", "b1", "b2", "n1", "s1", "s2"}
	if !slices.Equal(ids(list), wantIDs) {
		t.Fatalf("FindEvents after erasure = %v, want %v", ids(list), wantIDs)
	}
	for _, e := range list {
		wantEvent(t, "FindEvents after erasure: "+e.ID, e, wantByID[e.ID])
	}
	if len(erasures) != 1 || erasures[0].Category != herald.SubjectEntity || erasures[0].Type != herald.VerbDeleted ||
		erasures[0].PrimaryID != "C1" || erasures[0].Seq != sharedRes[len(sharedRes)-1].Seq+1 {
		t.Errorf("system events after erasure = %v, want one: entity C1 deleted, right after s2", fmtSystemEvents(erasures))
	}
	for _, e := range erasures {
		for _, erased := range []string{"10.0.0.1", "10.0.0.2", "Firefox 132", "Ann", "4111", "192.0.2.1"} {
			// Data only: the id and hash are random hex, which may hold
			// "4111" by chance.
			if bytes.Contains(e.Data, []byte(erased)) {
				t.Errorf("the system event of the erasure holds erased data %q: %s", erased, e.Body)
			}
		}
	}
	bodies, err := s.FindEvents(t.Context(), "acme", herald.EventFilter{EntityID: "C1", Limit: 100, BodiesOnly: true})
	if err != nil {
		t.Fatalf("FindEvents(entity C1, BodiesOnly): %v", err)
	}
	if !slices.Equal(ids(bodies), ids(wantC1)) {
		t.Fatalf("FindEvents(entity C1, BodiesOnly) after erasure = %v, want %v", ids(bodies), ids(wantC1))
	}
	for i, e := range bodies {
		if b := marshal(t, wantC1[i]); !bytes.Equal(e.Body, b) {
			t.Errorf("FindEvents(BodiesOnly) after erasure: %s body\n\t%s\nwant\n\t%s", e.ID, e.Body, b)
		}
	}

	// Lifecycles of the entity, and those its events joined, lose their
	// data and nothing else.
	for _, l := range []*herald.Lifecycle{l1, j1, sh} {
		want := *l
		want.Data, want.Redacted = nil, true
		wantLifecycle(t, "lifecycle "+l.ID+" after erasure", findLifecycle(t, s, "acme", l.ID), &want)
	}
	wantLifecycle(t, "C2's lifecycle after C1's erasure", findLifecycle(t, s, "acme", "L2"), l2)

	_, err = s.FindProfile(t.Context(), "acme", "C1")
	wantCode(t, "FindProfile(erased)", err, herald.ENOTFOUND)
	profiles, err := s.FindProfiles(t.Context(), "acme", herald.ProfileFilter{Limit: 100})
	if err != nil || !slices.Equal(profileIDs(profiles), []string{"C2"}) {
		t.Errorf("FindProfiles after erasure = %v, %v; want C2 only", profileIDs(profiles), err)
	}
	wantProfile(t, "C2 after C1's erasure", findProfile(t, s, "acme", "C2"), c2)
	wantProfile(t, "globex's C1 after acme's erasure", findProfile(t, s, "globex", "C1"), globexC1)
	got, err := s.FindEventByID(t.Context(), "globex", "a1")
	if err != nil {
		t.Fatalf("FindEventByID(globex, a1): %v", err)
	}
	wantEvent(t, "globex's a1 after acme's erasure", got, stored(theirs, "globex", theirsRes[0]))

	// Erasing again finds the entity's events, all redacted already.
	if n, err := s.EraseProfile(t.Context(), "acme", "C1"); err != nil || n != 0 {
		t.Errorf("EraseProfile(C1) again = %d, %v; want 0 events redacted, no error", n, err)
	}
	_, err = s.EraseProfile(t.Context(), "acme", "nobody")
	wantCode(t, "EraseProfile(unknown entity)", err, herald.ENOTFOUND)
	_, err = s.EraseProfile(t.Context(), "globex", "C2")
	wantCode(t, "EraseProfile(another account's entity)", err, herald.ENOTFOUND)

	// Events after the erasure start a fresh profile. A new event of a
	// redacted lifecycle counts, but brings no data back to it; the event
	// itself keeps its data.
	later := now.Add(time.Hour)
	next := lastSeq(t, s, "acme")
	res = appendOne(t, s, "acme",
		typedEvent(t, login, map[string]any{
			"id": "a4", "eventStatus": "succeeded", "coreCustomerId": "C1", "occurredAt": sec(100),
			"data": map[string]any{"external_login_id": "L4", "device_id": "d-2"},
		}, later),
		typedEvent(t, job, map[string]any{
			"id": "j2", "eventLifecycleId": "J1", "eventStatus": "done", "coreCustomerId": "C1", "occurredAt": sec(101),
			"data": map[string]any{"step": 2},
		}, later),
	)
	a4, j2 := next+1, next+2
	wantStored(t, "a4 after erasure", res[0], a4, later)
	wantStored(t, "j2 after erasure", res[1], j2, later)
	wantProfile(t, "C1 after erasure and two new events", findProfile(t, s, "acme", "C1"), &herald.Profile{
		ID: "C1", AccountID: "acme",
		Attributes: map[string]herald.Attribute{
			"external_login_id": {Value: json.RawMessage(`"L4"`), EventID: "a4", Seq: a4, OccurredAt: sec(100)},
			"device_id":         {Value: json.RawMessage(`"d-2"`), EventID: "a4", Seq: a4, OccurredAt: sec(100)},
			"step":              {Value: json.RawMessage(`2`), EventID: "j2", Seq: j2, OccurredAt: sec(101)},
		},
		FirstSeenAt: sec(100), LastSeenAt: sec(101), EventCount: 2,
		Counts:   map[string]int64{"authentication/login": 1, "jobs/job": 1},
		FirstSeq: a4, LastSeq: j2, CreatedAt: later, UpdatedAt: later,
	})
	if l := findLifecycle(t, s, "acme", "L4"); l.Redacted || !jsonEqual(l.Data, json.RawMessage(`{"external_login_id":"L4","device_id":"d-2"}`)) {
		t.Errorf("new lifecycle L4 after erasure: redacted %t, data %s; want its data", l.Redacted, l.Data)
	}
	want := *j1
	want.Data, want.Redacted = nil, true
	want.Status, want.Terminal, want.EventCount, want.LastSeq, want.LastOccurredAt, want.UpdatedAt = "done", true, 2, j2, sec(101), later
	want.History = append(slices.Clone(j1.History), herald.LifecycleStep{Status: "done", Terminal: true, EventID: "j2", Seq: j2, OccurredAt: sec(101)})
	wantLifecycle(t, "redacted lifecycle J1 after a new event", findLifecycle(t, s, "acme", "J1"), &want)
	e, err := s.FindEventByID(t.Context(), "acme", "j2")
	if err != nil || e.Redacted || !jsonEqual(e.Data, json.RawMessage(`{"step":2}`)) {
		t.Errorf("event j2 after erasure = %+v, %v; want it stored with its data", e, err)
	}
}

func testFindEventsByEntity(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	// AfterSeq in the table counts from base.
	base := map[string]int64{"acme": quietAccount(t, s, "acme"), "globex": quietAccount(t, s, "globex")}
	now := baseTime.Add(time.Minute)
	ev := func(id, category string, who map[string]any) *herald.Event {
		f := map[string]any{"id": id, "category": category, "type": "thing", "occurredAt": baseTime.Format(time.RFC3339Nano)}
		maps.Copy(f, who)
		return event(t, f, now)
	}
	appendOne(t, s, "acme",
		ev("e1", "a", map[string]any{"coreCustomerId": "C1"}),
		ev("e2", "b", map[string]any{"agentId": "C1", "agentType": "customer"}),
		ev("e3", "a", map[string]any{"agentId": "C1", "agentType": "employee"}),
		ev("e4", "a", map[string]any{"agentId": "C1", "agentType": "customer", "coreCustomerId": "C2"}),
		ev("e5", "a", map[string]any{"agentId": "C1", "agentType": "Customer"}),
		ev("e6", "a", map[string]any{"customerSerialId": "C1", "primaryId": "C1"}),
	)
	appendOne(t, s, "globex", ev("g1", "a", map[string]any{"coreCustomerId": "C1"}))
	for _, tc := range []struct {
		name    string
		account string
		filter  herald.EventFilter
		want    []string
	}{
		{"coreCustomerId, else an agent that is a customer", "acme", herald.EventFilter{EntityID: "C1"}, []string{"e1", "e2", "e5"}},
		{"coreCustomerId over agent", "acme", herald.EventFilter{EntityID: "C2"}, []string{"e4"}},
		{"entity and category", "acme", herald.EventFilter{EntityID: "C1", Category: "a"}, []string{"e1", "e5"}},
		{"entity and afterSeq", "acme", herald.EventFilter{EntityID: "C1", AfterSeq: 1}, []string{"e2", "e5"}},
		{"unknown entity", "acme", herald.EventFilter{EntityID: "C9"}, nil},
		{"other account", "globex", herald.EventFilter{EntityID: "C1"}, []string{"g1"}},
	} {
		for _, bodiesOnly := range []bool{false, true} {
			f := tc.filter
			f.Limit, f.BodiesOnly = 100, bodiesOnly
			f.AfterSeq += base[tc.account]
			got, err := s.FindEvents(t.Context(), tc.account, f)
			if err != nil {
				t.Fatalf("FindEvents(%s, %+v): %v", tc.account, f, err)
			}
			if !slices.Equal(ids(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("%s: FindEvents(%s, %+v) = %v, want %v", tc.name, tc.account, f, ids(got), tc.want)
			}
		}
	}
}

func findProfile(t *testing.T, s herald.ProfileService, accountID, id string) *herald.Profile {
	t.Helper()
	p, err := s.FindProfile(t.Context(), accountID, id)
	return must(t, p, err, "FindProfile(%s, %s)", accountID, id)
}

// wantProfile checks that got holds every field of want; attribute
// values compare as JSON.
func wantProfile(t *testing.T, what string, got, want *herald.Profile) {
	t.Helper()
	var diffs []string
	diff := func(field string, g, w any) {
		diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", field, g, w))
	}
	if got.ID != want.ID || got.AccountID != want.AccountID {
		diff("account and id", got.AccountID+" "+got.ID, want.AccountID+" "+want.ID)
	}
	for _, name := range slices.Sorted(maps.Keys(want.Attributes)) {
		w := want.Attributes[name]
		g, ok := got.Attributes[name]
		if !ok {
			diff("attribute "+name, "missing", fmtAttribute(w))
			continue
		}
		if !jsonEqual(g.Value, w.Value) || g.EventID != w.EventID || g.Seq != w.Seq || !g.OccurredAt.Equal(w.OccurredAt) {
			diff("attribute "+name, fmtAttribute(g), fmtAttribute(w))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got.Attributes)) {
		if _, ok := want.Attributes[name]; !ok {
			diff("attribute "+name, fmtAttribute(got.Attributes[name]), "none")
		}
	}
	if !got.FirstSeenAt.Equal(want.FirstSeenAt) || !got.LastSeenAt.Equal(want.LastSeenAt) {
		diff("seen", fmtRange(got.FirstSeenAt, got.LastSeenAt), fmtRange(want.FirstSeenAt, want.LastSeenAt))
	}
	if got.EventCount != want.EventCount {
		diff("EventCount", got.EventCount, want.EventCount)
	}
	if !maps.Equal(got.Counts, want.Counts) {
		diff("Counts", got.Counts, want.Counts)
	}
	if got.FirstSeq != want.FirstSeq || got.LastSeq != want.LastSeq {
		diff("seqs", fmt.Sprintf("%d…%d", got.FirstSeq, got.LastSeq), fmt.Sprintf("%d…%d", want.FirstSeq, want.LastSeq))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		diff("created and updated", fmtRange(got.CreatedAt, got.UpdatedAt), fmtRange(want.CreatedAt, want.UpdatedAt))
	}
	if len(diffs) > 0 {
		t.Errorf("%s: profile %s:\n\t%s", what, want.ID, strings.Join(diffs, "\n\t"))
	}
}

func fmtAttribute(a herald.Attribute) string {
	return fmt.Sprintf("%s by %s seq %d at %s", a.Value, a.EventID, a.Seq, a.OccurredAt.UTC().Format(time.RFC3339Nano))
}

func profileIDs(list []*herald.Profile) []string {
	out := make([]string, len(list))
	for i, p := range list {
		out[i] = p.ID
	}
	return out
}

// wantEvent checks that got is want as stored: every envelope field, and
// a body that is want encoded by MarshalEvent, as readers may serve
// either.
func wantEvent(t *testing.T, what string, got, want *herald.Event) {
	t.Helper()
	g, w := *got, *want
	g.Body, g.Hash, w.Body, w.Hash = nil, "", nil, ""
	wantBody := marshal(t, want)
	if !bytes.Equal(marshal(t, &g), wantBody) || g.AccountID != w.AccountID {
		t.Errorf("%s: event\n\t%s (account %q)\nwant\n\t%s (account %q)", what, marshal(t, &g), g.AccountID, wantBody, w.AccountID)
	}
	if !bytes.Equal(got.Body, wantBody) {
		t.Errorf("%s: body\n\t%s\nwant\n\t%s", what, got.Body, wantBody)
	}
}

func marshal(t *testing.T, e *herald.Event) []byte {
	t.Helper()
	c := *e
	c.Body = nil
	b, err := herald.MarshalEvent(&c)
	if err != nil {
		t.Fatalf("MarshalEvent(%s): %v", e.ID, err)
	}
	return b
}
