package storetest

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

func testEventTypes(t *testing.T, newDB NewDatabase) {
	t.Run("CreateThenReplace", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")

		v1 := payoutType("acme", baseTime)
		created, err := s.PutEventType(t.Context(), v1)
		if err != nil || !created {
			t.Fatalf("PutEventType(new type) = %t, %v; want created", created, err)
		}
		got := findEventType(t, s, "acme", "payments", "payout")
		wantEventType(t, "after create", got, payoutType("acme", baseTime))

		// The replacement drops the schema, the transitions and the
		// profile fields, and changes everything else: nothing of the
		// first definition may linger, but its creation time stays.
		v2 := &herald.EventType{
			Category: "payments", Type: "payout", Description: "Replaced.",
			Statuses: []herald.StatusDef{
				{Name: "sent", Description: "Money left, now without workflows."},
				{Name: "held", Description: "A new status.", Workflows: []string{"review"}, Persist: true},
			},
			TerminalStatuses: []string{"sent"},
			BuiltIn:          true,
			CreatedAt:        baseTime.Add(time.Hour),
			UpdatedAt:        baseTime.Add(time.Hour),
			AccountID:        "acme",
		}
		created, err = s.PutEventType(t.Context(), v2)
		if err != nil || created {
			t.Fatalf("PutEventType(existing type) = %t, %v; want replaced (created false)", created, err)
		}
		want := *v2
		want.CreatedAt = baseTime
		got = findEventType(t, s, "acme", "payments", "payout")
		wantEventType(t, "after replace", got, &want)
		all, err := s.FindEventTypes(t.Context(), "acme")
		if err != nil {
			t.Fatalf("FindEventTypes: %v", err)
		}
		if len(all) != 1 {
			t.Fatalf("FindEventTypes = %v, want only payments/payout", typeKeys(all))
		}
		wantEventType(t, "FindEventTypes after replace", all[0], &want)
	})

	t.Run("CreateOnlyOnce", func(t *testing.T) {
		t.Parallel()
		open := newDB(t)
		a, b := open(), open()
		newAccount(t, a, "acme")

		if err := a.CreateEventType(t.Context(), payoutType("acme", baseTime)); err != nil {
			t.Fatalf("CreateEventType(new type): %v", err)
		}
		other := payoutType("acme", baseTime.Add(time.Hour))
		other.Description = "Would replace the first."
		if err := a.CreateEventType(t.Context(), other); herald.ErrorCode(err) != herald.ECONFLICT {
			t.Fatalf("CreateEventType(existing type) = %v, want ECONFLICT", err)
		}
		wantEventType(t, "after a second create", findEventType(t, a, "acme", "payments", "payout"), payoutType("acme", baseTime))
		elsewhere := simpleType("acme", "refunds", "payout")
		if err := a.CreateEventType(t.Context(), elsewhere); herald.ErrorCode(err) != herald.ECONFLICT {
			t.Fatalf("CreateEventType(name taken in another category) = %v, want ECONFLICT", err)
		}
		if err := a.CreateEventType(t.Context(), simpleType("nobody", "misc", "thing")); herald.ErrorCode(err) != herald.ENOTFOUND {
			t.Fatalf("CreateEventType(unknown account) = %v, want ENOTFOUND", err)
		}

		// Two nodes creating one type at once: exactly one succeeds.
		for round := range 10 {
			typ := fmt.Sprintf("race%d", round)
			errs := make(chan error, 2)
			for _, s := range []Store{a, b} {
				go func() { errs <- s.CreateEventType(t.Context(), simpleType("acme", "misc", typ)) }()
			}
			var ok, conflicts int
			for range 2 {
				switch err := <-errs; herald.ErrorCode(err) {
				case "":
					ok++
				case herald.ECONFLICT:
					conflicts++
				default:
					t.Fatalf("round %d: CreateEventType: %v", round, err)
				}
			}
			if ok != 1 || conflicts != 1 {
				t.Fatalf("round %d: %d creates succeeded and %d conflicted, want one of each", round, ok, conflicts)
			}
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")

		// A built-in type the account extended with a status of its own,
		// a type with every field set, and a type with as little as can be.
		login := builtinType(t, "authentication", "login")
		login.AccountID, login.CreatedAt, login.UpdatedAt = "acme", baseTime, baseTime
		login.Statuses = append(login.Statuses, herald.StatusDef{
			Name: "locked", Description: "Too many attempts.", Workflows: []string{"alert-security"},
		})
		login.TerminalStatuses = append(login.TerminalStatuses, "locked")
		login.Transitions["attempted"] = append(login.Transitions["attempted"], "locked")
		bare := &herald.EventType{
			Category: "misc", Type: "bare", AccountID: "acme", CreatedAt: baseTime, UpdatedAt: baseTime,
		}
		for _, want := range []*herald.EventType{login, payoutType("acme", baseTime), bare} {
			stored := cloneEventType(want)
			if _, err := s.PutEventType(t.Context(), stored); err != nil {
				t.Fatalf("PutEventType(%s): %v", want.Key(), err)
			}
			got := findEventType(t, s, "acme", want.Category, want.Type)
			wantEventType(t, "FindEventType("+want.Key()+")", got, want)
		}
	})

	t.Run("OrderAndAccounts", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		newAccount(t, s, "globex")

		// Stored out of order, so that the order comes from the names.
		for _, key := range []string{
			"transactions/transaction", "authentication/userLoggedIn", "alerts/zeta",
			"authentication/login", "authentication/alpha",
		} {
			category, typ, _ := strings.Cut(key, "/")
			et := simpleType("acme", category, typ)
			if _, err := s.PutEventType(t.Context(), et); err != nil {
				t.Fatalf("PutEventType(%s): %v", key, err)
			}
		}
		want := []string{
			"alerts/zeta", "authentication/alpha", "authentication/login",
			"authentication/userLoggedIn", "transactions/transaction",
		}
		acme := findEventTypes(t, s, "acme")
		if !slices.Equal(typeKeys(acme), want) {
			t.Fatalf("FindEventTypes(acme) = %v, want %v", typeKeys(acme), want)
		}
		for _, et := range acme {
			wantEventType(t, "FindEventTypes(acme): "+et.Key(), et, findEventType(t, s, "acme", et.Category, et.Type))
		}

		// Another account sees none of them, cannot delete them, and may
		// define a type of the same name its own way.
		if got := findEventTypes(t, s, "globex"); len(got) != 0 {
			t.Errorf("FindEventTypes(globex) = %v, want none", typeKeys(got))
		}
		_, err := s.FindEventType(t.Context(), "globex", "authentication", "login")
		wantCode(t, "FindEventType(globex, acme's type)", err, herald.ENOTFOUND)
		err = s.DeleteEventType(t.Context(), "globex", "authentication", "login")
		wantCode(t, "DeleteEventType(globex, acme's type)", err, herald.ENOTFOUND)
		theirs := simpleType("globex", "authentication", "login")
		theirs.Description = "globex's own login"
		created, err := s.PutEventType(t.Context(), theirs)
		if err != nil || !created {
			t.Fatalf("PutEventType(globex's login) = %t, %v; want created", created, err)
		}
		wantTheirs := simpleType("globex", "authentication", "login")
		wantTheirs.Description = "globex's own login"
		wantEventType(t, "globex's login", findEventType(t, s, "globex", "authentication", "login"), wantTheirs)
		wantEventType(t, "acme's login", findEventType(t, s, "acme", "authentication", "login"), simpleType("acme", "authentication", "login"))
		if got := findEventTypes(t, s, "acme"); !slices.Equal(typeKeys(got), want) {
			t.Errorf("FindEventTypes(acme) after globex's put = %v, want %v", typeKeys(got), want)
		}
		if got := findEventTypes(t, s, "nobody"); len(got) != 0 {
			t.Errorf("FindEventTypes(unknown account) = %v, want none", typeKeys(got))
		}
	})

	t.Run("NameTakenInAnotherCategory", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		newAccount(t, s, "globex")
		first := simpleType("acme", "authentication", "login")
		if _, err := s.PutEventType(t.Context(), first); err != nil {
			t.Fatalf("PutEventType(authentication/login): %v", err)
		}

		// Both would be served as loginEventSchema.
		_, err := s.PutEventType(t.Context(), simpleType("acme", "transactions", "login"))
		wantCode(t, "PutEventType(transactions/login beside authentication/login)", err, herald.ECONFLICT)
		_, err = s.FindEventType(t.Context(), "acme", "transactions", "login")
		wantCode(t, "FindEventType(refused transactions/login)", err, herald.ENOTFOUND)
		wantEventType(t, "authentication/login after the refused put", findEventType(t, s, "acme", "authentication", "login"), simpleType("acme", "authentication", "login"))

		// Names are unique per account only.
		created, err := s.PutEventType(t.Context(), simpleType("globex", "transactions", "login"))
		if err != nil || !created {
			t.Errorf("PutEventType(globex transactions/login) = %t, %v; want created", created, err)
		}
		// Once the first is gone, the name is free.
		if err := s.DeleteEventType(t.Context(), "acme", "authentication", "login"); err != nil {
			t.Fatalf("DeleteEventType: %v", err)
		}
		created, err = s.PutEventType(t.Context(), simpleType("acme", "transactions", "login"))
		if err != nil || !created {
			t.Errorf("PutEventType(transactions/login after the delete) = %t, %v; want created", created, err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		for _, typ := range []string{"kept", "doomed"} {
			if _, err := s.PutEventType(t.Context(), simpleType("acme", "misc", typ)); err != nil {
				t.Fatalf("PutEventType(%s): %v", typ, err)
			}
		}
		if err := s.DeleteEventType(t.Context(), "acme", "misc", "doomed"); err != nil {
			t.Fatalf("DeleteEventType: %v", err)
		}
		_, err := s.FindEventType(t.Context(), "acme", "misc", "doomed")
		wantCode(t, "FindEventType(deleted)", err, herald.ENOTFOUND)
		if got := findEventTypes(t, s, "acme"); !slices.Equal(typeKeys(got), []string{"misc/kept"}) {
			t.Errorf("FindEventTypes after delete = %v, want [misc/kept]", typeKeys(got))
		}
		err = s.DeleteEventType(t.Context(), "acme", "misc", "doomed")
		wantCode(t, "DeleteEventType(already deleted)", err, herald.ENOTFOUND)
		err = s.DeleteEventType(t.Context(), "acme", "misc", "unknown")
		wantCode(t, "DeleteEventType(unknown type)", err, herald.ENOTFOUND)
		err = s.DeleteEventType(t.Context(), "acme", "other", "kept")
		wantCode(t, "DeleteEventType(right type, wrong category)", err, herald.ENOTFOUND)
		// A deleted type can be defined again, as new.
		created, err := s.PutEventType(t.Context(), simpleType("acme", "misc", "doomed"))
		if err != nil || !created {
			t.Errorf("PutEventType(after delete) = %t, %v; want created", created, err)
		}
	})

	t.Run("DeleteKeepsEvents", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		base := lastSeq(t, s, "acme")
		def := payoutType("acme", baseTime)
		if _, err := s.PutEventType(t.Context(), def); err != nil {
			t.Fatalf("PutEventType: %v", err)
		}
		now := baseTime.Add(time.Minute)
		e := typedEvent(t, def, map[string]any{
			"id": "p1", "eventStatus": "requested", "coreCustomerId": "C1", "occurredAt": baseTime,
			"data": map[string]any{"payout_id": "PO-1", "amount": 10},
		}, now)
		appendOne(t, s, "acme", e)
		before := findLifecycle(t, s, "acme", "PO-1")
		if err := s.DeleteEventType(t.Context(), "acme", "payments", "payout"); err != nil {
			t.Fatalf("DeleteEventType: %v", err)
		}
		// The deletion's system event follows p1; p1 keeps its seq.
		wantSeqs(t, s, "acme", base, []string{"p1"})
		wantLifecycle(t, "lifecycle after its type was deleted", findLifecycle(t, s, "acme", "PO-1"), before)
		if _, err := s.FindProfile(t.Context(), "acme", "C1"); err != nil {
			t.Errorf("FindProfile after the type was deleted: %v", err)
		}
	})
}

func testSettings(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	newAccount(t, s, "acme")
	newAccount(t, s, "globex")

	wantSettings := func(account string, want *herald.Settings) {
		t.Helper()
		got, err := s.FindSettings(t.Context(), account)
		if err != nil {
			t.Fatalf("FindSettings(%s): %v", account, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("FindSettings(%s) = %+v, want %+v", account, got, want)
		}
	}
	wantSettings("acme", herald.DefaultSettings())

	// Every field differs from the defaults.
	reject := &herald.Settings{
		UnknownTypes: herald.UnknownTypesReject,
		Sessions: herald.SessionSettings{
			LoginTypes:        []string{"custom/signIn", "authentication/userLoggedIn"},
			LogoutTypes:       []string{"custom/signOut"},
			InactivityTimeout: herald.Duration(90 * time.Second),
			MaxLength:         herald.Duration(2*time.Hour + 30*time.Minute),
		},
		Visits:        herald.VisitSettings{Timeout: herald.Duration(5 * time.Second)},
		JourneyEvents: herald.JourneyEvents{SessionStarted: true, VisitEnded: true},
	}
	if err := s.PutSettings(t.Context(), "acme", reject); err != nil {
		t.Fatalf("PutSettings(acme, reject): %v", err)
	}
	wantSettings("acme", reject)
	wantSettings("globex", herald.DefaultSettings())

	// Put replaces: back to accept, and to the defaults but one.
	accept := herald.DefaultSettings()
	accept.JourneyEvents.VisitStarted = false
	if err := s.PutSettings(t.Context(), "acme", accept); err != nil {
		t.Fatalf("PutSettings(acme, accept): %v", err)
	}
	wantSettings("acme", accept)

	_, err := s.FindSettings(t.Context(), "nobody")
	wantCode(t, "FindSettings(unknown account)", err, herald.ENOTFOUND)
	err = s.PutSettings(t.Context(), "nobody", reject)
	wantCode(t, "PutSettings(unknown account)", err, herald.ENOTFOUND)
	_, err = s.FindSettings(t.Context(), "nobody")
	wantCode(t, "FindSettings(unknown account) after PutSettings", err, herald.ENOTFOUND)
}

// payoutType is a type with every field of a definition set, down to
// characters that HTML escaping or a JSON column would touch.
func payoutType(accountID string, at time.Time) *herald.EventType {
	return &herald.EventType{
		Category:    "payments",
		Type:        "payout",
		Description: `A payout to a <customer> & "friends", ünïcødé 😀`,
		Schema: json.RawMessage(`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",` +
			`"required":["payout_id"],"properties":{"payout_id":{"type":"string","maxLength":64},` +
			`"amount":{"type":"number","minimum":0.01},"tags":{"type":"array","items":{"type":"string"}},` +
			`"beneficiary":{"type":"object","properties":{"name":{"type":"string","pattern":"^[^<>&]+$"}}}}}`),
		Statuses: []herald.StatusDef{
			{Name: "requested", Description: "Asked for.", Workflows: []string{"notify-ops", "score"}},
			{Name: "sent", Description: "Money left.", Workflows: []string{"receipt"}, Persist: true},
			{Name: "returned", Description: "It came back.", Persist: true},
			{Name: "pending", Description: "Kept from the catalog.", BuiltIn: true},
		},
		TerminalStatuses:   []string{"sent", "returned"},
		Transitions:        map[string][]string{"requested": {"sent", "returned", "pending"}, "pending": {"sent"}},
		LifecycleIDPointer: "/data/payout_id",
		ProfileFields:      []string{"/data/amount", "/data/beneficiary/name", "/data/a~1b"},
		Persist:            true,
		CreatedAt:          at,
		UpdatedAt:          at,
		AccountID:          accountID,
	}
}

// simpleType is a small type whose description names its account, so
// that a store that mixes accounts up is seen to.
func simpleType(accountID, category, typ string) *herald.EventType {
	return &herald.EventType{
		Category: category, Type: typ, Description: "defined by " + accountID,
		Schema:           json.RawMessage(`{"type":"object"}`),
		Statuses:         []herald.StatusDef{{Name: "open", Description: "Open."}, {Name: "closed", Description: "Closed."}},
		TerminalStatuses: []string{"closed"},
		CreatedAt:        baseTime, UpdatedAt: baseTime, AccountID: accountID,
	}
}

// builtinType returns the built-in type category/typ.
func builtinType(t *testing.T, category, typ string) *herald.EventType {
	t.Helper()
	for _, et := range herald.BuiltinEventTypes() {
		if et.Category == category && et.Type == typ {
			return et
		}
	}
	t.Fatalf("no built-in type %s/%s", category, typ)
	return nil
}

func cloneEventType(et *herald.EventType) *herald.EventType {
	c := *et
	c.Schema = slices.Clone(et.Schema)
	c.Statuses = slices.Clone(et.Statuses)
	for i := range c.Statuses {
		c.Statuses[i].Workflows = slices.Clone(c.Statuses[i].Workflows)
	}
	c.TerminalStatuses = slices.Clone(et.TerminalStatuses)
	if et.Transitions != nil {
		c.Transitions = make(map[string][]string, len(et.Transitions))
		for k, v := range et.Transitions {
			c.Transitions[k] = slices.Clone(v)
		}
	}
	c.ProfileFields = slices.Clone(et.ProfileFields)
	return &c
}

func findEventType(t *testing.T, s herald.EventTypeService, accountID, category, typ string) *herald.EventType {
	t.Helper()
	et, err := s.FindEventType(t.Context(), accountID, category, typ)
	if err != nil {
		t.Fatalf("FindEventType(%s, %s/%s): %v", accountID, category, typ, err)
	}
	return et
}

func findEventTypes(t *testing.T, s herald.EventTypeService, accountID string) []*herald.EventType {
	t.Helper()
	list, err := s.FindEventTypes(t.Context(), accountID)
	if err != nil {
		t.Fatalf("FindEventTypes(%s): %v", accountID, err)
	}
	return list
}

// wantEventType checks that got holds every field of want. Lists that are
// empty compare equal to nil, but Transitions may not: nil allows any
// order and an empty map none. The schema compares as JSON, since a
// store may keep it in a column that reorders keys.
func wantEventType(t *testing.T, what string, got, want *herald.EventType) {
	t.Helper()
	var diffs []string
	diff := func(field string, g, w any) {
		diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", field, g, w))
	}
	if got.Category != want.Category || got.Type != want.Type {
		diff("name", got.Key(), want.Key())
	}
	if got.AccountID != want.AccountID {
		diff("AccountID", got.AccountID, want.AccountID)
	}
	if got.Description != want.Description {
		diff("Description", got.Description, want.Description)
	}
	if !jsonEqual(got.Schema, want.Schema) {
		diff("Schema", string(got.Schema), string(want.Schema))
	}
	if len(got.Statuses) != len(want.Statuses) {
		diff("Statuses", got.Statuses, want.Statuses)
	} else {
		for i, g := range got.Statuses {
			w := want.Statuses[i]
			if g.Name != w.Name || g.Description != w.Description || !slices.Equal(g.Workflows, w.Workflows) ||
				g.Persist != w.Persist || g.BuiltIn != w.BuiltIn {
				diff(fmt.Sprintf("Statuses[%d]", i), fmt.Sprintf("%+v", g), fmt.Sprintf("%+v", w))
			}
		}
	}
	if !slices.Equal(got.TerminalStatuses, want.TerminalStatuses) {
		diff("TerminalStatuses", got.TerminalStatuses, want.TerminalStatuses)
	}
	if (got.Transitions == nil) != (want.Transitions == nil) || !maps.EqualFunc(got.Transitions, want.Transitions, slices.Equal) {
		diff("Transitions", fmtTransitions(got.Transitions), fmtTransitions(want.Transitions))
	}
	if got.LifecycleIDPointer != want.LifecycleIDPointer {
		diff("LifecycleIDPointer", got.LifecycleIDPointer, want.LifecycleIDPointer)
	}
	if !slices.Equal(got.ProfileFields, want.ProfileFields) {
		diff("ProfileFields", got.ProfileFields, want.ProfileFields)
	}
	if got.Persist != want.Persist {
		diff("Persist", got.Persist, want.Persist)
	}
	if got.BuiltIn != want.BuiltIn {
		diff("BuiltIn", got.BuiltIn, want.BuiltIn)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		diff("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		diff("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	if len(diffs) > 0 {
		t.Errorf("%s: type %s:\n\t%s", what, want.Key(), strings.Join(diffs, "\n\t"))
	}
}

func fmtTransitions(m map[string][]string) string {
	if m == nil {
		return "nil (any order)"
	}
	return fmt.Sprint(m)
}

func typeKeys(types []*herald.EventType) []string {
	out := make([]string, len(types))
	for i, et := range types {
		out[i] = et.Key()
	}
	return out
}

// jsonEqual reports whether a and b hold the same JSON value; both empty
// is equal, one empty is not.
func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
