package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/catalog"
)

// typeAnswer is an event type as the API shows it.
type typeAnswer struct {
	Category, Type, Description string
	Schema                      json.RawMessage
	Statuses                    []herald.StatusDef
	TerminalStatuses            []string
	Transitions                 map[string][]string
	LifecycleIDPointer          string
	ProfileFields               []string
	Persist, BuiltIn            bool
	CreatedAt, UpdatedAt        string
}

// typeAt sends a request that answers a type and decodes the answer into
// a fresh value: decoding into a used one would merge maps and keep
// fields the answer left out.
func typeAt(t *testing.T, e *env, method, path, key, body string, status int) typeAnswer {
	t.Helper()
	var a typeAnswer
	e.do(method, path, key, body).wantStatus(t, status).json(t, &a)
	return a
}

func (a typeAnswer) statusNames() []string {
	var out []string
	for _, s := range a.Statuses {
		out = append(out, s.Name)
	}
	return out
}

const cardCharged = `{
	"category": "payments", "type": "cardCharged", "description": "A card was charged.",
	"schema": {"type": "object", "required": ["charge_id", "amount"], "properties": {
		"charge_id": {"type": "string"}, "amount": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"}, "email": {"type": "string"}}},
	"statuses": [
		{"name": "pending", "description": "Sent to the network."},
		{"name": "captured", "description": "The money moved.", "workflows": ["receipt"], "persist": true},
		{"name": "declined", "description": "The network said no."}
	],
	"terminalStatuses": ["captured", "declined"],
	"transitions": {"pending": ["captured", "declined"]},
	"lifecycleIdPointer": "/data/charge_id",
	"profileFields": ["/data/email"]
}`

func TestEventTypeLifecycleOfADefinition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	var created typeAnswer
	r := e.do("POST", "/v1/event-types", e.admin, cardCharged).wantStatus(t, 201)
	r.json(t, &created)
	if loc := r.header.Get("Location"); loc != "/v1/event-types/payments/cardCharged" {
		t.Errorf("Location %q", loc)
	}
	at := testNow.Truncate(time.Microsecond).Format(time.RFC3339Nano)
	if created.BuiltIn || created.CreatedAt != at || created.UpdatedAt != at ||
		!slices.Equal(created.statusNames(), []string{"pending", "captured", "declined"}) ||
		!slices.Equal(created.Statuses[1].Workflows, []string{"receipt"}) || !created.Statuses[1].Persist ||
		created.LifecycleIDPointer != "/data/charge_id" || !slices.Equal(created.ProfileFields, []string{"/data/email"}) {
		t.Errorf("created %s", r.body)
	}
	got := typeAt(t, e, "GET", "/v1/event-types/payments/cardCharged", e.read, "", 200)
	if !reflect.DeepEqual(got, created) {
		t.Errorf("read back\n got %+v\nwant %+v", got, created)
	}

	// An event of the type is checked against it and joins its lifecycle
	// by the type's pointer.
	charge := func(status, amount string) string {
		return event(map[string]any{"category": "payments", "type": "cardCharged", "eventStatus": status, "coreCustomerId": "cust-9",
			"data": map[string]any{"charge_id": "ch-1", "amount": amount, "email": "nine@example.com"}})
	}
	p := e.do("POST", "/v1/events", e.ingest, charge("pending", "12.5")).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/data/amount"}) {
		t.Errorf("bad amount: %+v", p.Errors)
	}
	var res ingestResult
	e.do("POST", "/v1/events", e.ingest, charge("pending", "12.50")).wantStatus(t, 201).json(t, &res)
	var ev map[string]any
	e.do("GET", "/v1/events/"+res.ID, e.read, "").wantStatus(t, 200).json(t, &ev)
	if ev["eventLifecycleId"] != "ch-1" {
		t.Errorf("eventLifecycleId %v, want ch-1 from /data/charge_id", ev["eventLifecycleId"])
	}

	// PUT replaces: createdAt stays, updatedAt moves.
	e.advance(time.Hour)
	replaced := strings.Replace(cardCharged, `"A card was charged."`, `"A card was charged, or tried."`, 1)
	got = typeAt(t, e, "PUT", "/v1/event-types/payments/cardCharged", e.admin, replaced, 200)
	if got.Description != "A card was charged, or tried." || got.CreatedAt != at ||
		got.UpdatedAt != testNow.Add(time.Hour).Truncate(time.Microsecond).Format(time.RFC3339Nano) {
		t.Errorf("replaced: %+v", got)
	}
	// PUT of a new type creates it; the body may leave out what the path says.
	r = e.do("PUT", "/v1/event-types/payments/cardRefunded", e.admin, `{"statuses":[{"name":"done","description":"Refunded."}]}`).wantStatus(t, 201)
	got = typeAnswer{}
	r.json(t, &got)
	if got.Category != "payments" || got.Type != "cardRefunded" || r.header.Get("Location") != "/v1/event-types/payments/cardRefunded" {
		t.Errorf("put created %s", r.body)
	}

	var list struct{ EventTypes []typeAnswer }
	e.do("GET", "/v1/event-types", e.read, "").wantStatus(t, 200).json(t, &list)
	var keys []string
	for _, ty := range list.EventTypes {
		keys = append(keys, ty.Category+"/"+ty.Type)
	}
	builtins := herald.BuiltinEventTypes()
	want := []string{"payments/cardCharged", "payments/cardRefunded"}
	for _, ty := range builtins {
		want = append(want, ty.Category+"/"+ty.Type)
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("listed %v\nwant %v", keys, want)
	}
	// Another account sees only the built-in types.
	e.do("GET", "/v1/event-types", e.other, "").wantStatus(t, 200).json(t, &list)
	if len(list.EventTypes) != len(builtins) {
		t.Errorf("account other lists %d types, want the %d built-in ones", len(list.EventTypes), len(builtins))
	}

	// Deleting the type keeps its events.
	e.do("DELETE", "/v1/event-types/payments/cardCharged", e.admin, "").wantStatus(t, 204)
	e.do("GET", "/v1/event-types/payments/cardCharged", e.read, "").wantStatus(t, 404)
	e.do("DELETE", "/v1/event-types/payments/cardCharged", e.admin, "").wantStatus(t, 404)
	e.do("GET", "/v1/events/"+res.ID, e.read, "").wantStatus(t, 200)
	// Its events are now of an unregistered type: accepted as they are.
	e.do("POST", "/v1/events", e.ingest, charge("whatever", "12.5")).wantStatus(t, 201)
}

// TestEventTypeInvalid sends each way a definition can be wrong, with the
// exact status, problem type and pointers it must produce.
func TestEventTypeInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("POST", "/v1/event-types", e.admin, cardCharged).wantStatus(t, 201)
	def := func(fields string) string {
		return `{"category":"payments","type":"cardVoided"` + fields + `}`
	}
	const (
		invalid  = "invalid"
		conflict = "conflict"
		tooLarge = "too-large"
	)
	cases := []struct {
		name     string
		method   string
		path     string
		body     string
		status   int
		problem  string
		pointers []string
	}{
		{"unknown field", "POST", "", def(`,"colour":"red"`), 400, invalid, []string{"/colour"}},
		{"unknown field of a status", "POST", "", def(`,"statuses":[{"name":"ok"},{"name":"no","colour":"red"}]`), 400, invalid, []string{"/statuses/1/colour"}},
		{"no category", "POST", "", `{"type":"cardVoided"}`, 400, invalid, []string{"/category"}},
		{"type with a space", "POST", "", `{"category":"payments","type":"card voided"}`, 400, invalid, []string{"/type"}},
		{"category not a string", "POST", "", `{"category":7,"type":"cardVoided"}`, 400, invalid, []string{"/category"}},
		{"statuses not a list", "POST", "", def(`,"statuses":"ok"`), 400, invalid, []string{"/statuses"}},
		{"status not an object", "POST", "", def(`,"statuses":["ok"]`), 400, invalid, []string{"/statuses/0"}},
		{"status without a name", "POST", "", def(`,"statuses":[{"description":"?"}]`), 400, invalid, []string{"/statuses/0/name"}},
		{"status listed twice", "POST", "", def(`,"statuses":[{"name":"ok"},{"name":"ok"}]`), 400, invalid, []string{"/statuses/1/name"}},
		{"workflow not a string", "POST", "", def(`,"statuses":[{"name":"ok","workflows":["notify",3]}]`), 400, invalid, []string{"/statuses/0/workflows/1"}},
		{"terminal status not listed", "POST", "", def(`,"statuses":[{"name":"ok"}],"terminalStatuses":["ok","done"]`), 400, invalid, []string{"/terminalStatuses/1"}},
		{"terminal status not a string", "POST", "", def(`,"statuses":[{"name":"ok"}],"terminalStatuses":[true]`), 400, invalid, []string{"/terminalStatuses/0"}},
		{"transition to an unknown status", "POST", "", def(`,"statuses":[{"name":"ok"}],"transitions":{"ok":["ok","gone"]}`), 400, invalid, []string{"/transitions/ok/1"}},
		{"transition from an unknown status", "POST", "", def(`,"statuses":[{"name":"ok"}],"transitions":{"a/b":[]}`), 400, invalid, []string{"/transitions/a~1b"}},
		{"transitions not a list", "POST", "", def(`,"statuses":[{"name":"ok"}],"transitions":{"ok":"ok"}`), 400, invalid, []string{"/transitions/ok"}},
		{"lifecycle pointer not a pointer", "POST", "", def(`,"lifecycleIdPointer":"data.id"`), 400, invalid, []string{"/lifecycleIdPointer"}},
		{"lifecycle pointer outside data", "POST", "", def(`,"lifecycleIdPointer":"/primaryId"`), 400, invalid, []string{"/lifecycleIdPointer"}},
		{"profile field not a pointer", "POST", "", def(`,"profileFields":["/data/email","email"]`), 400, invalid, []string{"/profileFields/1"}},
		{"schema not a schema", "POST", "", def(`,"schema":5`), 400, invalid, []string{"/schema"}},
		{"schema with a bad keyword", "POST", "", def(`,"schema":{"type":"object","properties":{"a":{"minLength":"x"}}}`), 400, invalid, []string{"/schema/properties/a/minLength"}},
		{"many faults", "POST", "", `{"category":"payments","type":"x y","statuses":[{"name":"ok"}],"terminalStatuses":["done"],"lifecycleIdPointer":"id"}`,
			400, invalid, []string{"/type", "/terminalStatuses/0", "/lifecycleIdPointer"}},
		{"not JSON", "POST", "", `{"category":`, 400, invalid, []string{""}},
		{"two values", "POST", "", def(``) + `{}`, 400, invalid, []string{""}},
		{"empty body", "POST", "", ``, 400, invalid, []string{""}},
		{"too large", "POST", "", def(`,"description":"` + strings.Repeat("x", maxEventTypeBytes) + `"`), 413, tooLarge, nil},
		{"exists", "POST", "", `{"category":"payments","type":"cardCharged"}`, 409, conflict, nil},
		{"built-in exists", "POST", "", `{"category":"authentication","type":"login"}`, 409, conflict, nil},
		{"type name taken by another category", "POST", "", `{"category":"cards","type":"cardCharged"}`, 409, conflict, nil},

		{"put category differs from the path", "PUT", "/payments/cardVoided", `{"category":"cards"}`, 400, invalid, []string{"/category"}},
		{"put type differs from the path", "PUT", "/payments/cardVoided", `{"category":"payments","type":"cardVoid"}`, 400, invalid, []string{"/type"}},
		{"put bad category in the path", "PUT", "/pay%20ments/cardVoided", `{}`, 400, invalid, []string{"/category"}},
		{"put changes a built-in schema", "PUT", "/authentication/login", `{"schema":{"type":"object"}}`, 400, invalid, []string{"/schema"}},
		{"put drops a built-in status", "PUT", "/authentication/login", `{"statuses":[{"name":"attempted"},{"name":"succeeded"}],"terminalStatuses":["succeeded"],"transitions":{"attempted":["succeeded"]}}`, 400, invalid, []string{"/statuses"}},
		{"put moves a built-in lifecycle pointer", "PUT", "/authentication/login", `{"lifecycleIdPointer":"/data/id"}`, 400, invalid, []string{"/lifecycleIdPointer"}},
		{"put name taken by another category", "PUT", "/cards/cardCharged", `{}`, 409, conflict, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, "/v1/event-types"+c.path, e.admin, c.body).wantStatus(t, c.status)
			p := r.problem(t)
			if p.Type != problemTypeBase+c.problem {
				t.Errorf("problem type %q, want %s", p.Type, c.problem)
			}
			if got := pointers(p); !slices.Equal(got, c.pointers) && !(len(got) == 0 && len(c.pointers) == 0) {
				t.Errorf("pointers %q, want %q (%s)", got, c.pointers, p.Detail)
			}
		})
	}
	// None of them changed the catalog.
	var list struct{ EventTypes []typeAnswer }
	e.do("GET", "/v1/event-types", e.read, "").wantStatus(t, 200).json(t, &list)
	if want := len(herald.BuiltinEventTypes()) + 1; len(list.EventTypes) != want {
		t.Errorf("%d types after refused definitions, want %d (the built-in ones and payments/cardCharged)", len(list.EventTypes), want)
	}
	login := typeAt(t, e, "GET", "/v1/event-types/authentication/login", e.read, "", 200)
	if !slices.Equal(login.statusNames(), []string{"attempted", "succeeded", "failed"}) || login.LifecycleIDPointer != "/data/external_login_id" {
		t.Errorf("login changed: %+v", login)
	}
}

// TestBuiltInTypeExtended adds a custom status to the built-in login type:
// the defaults stay, the new status is accepted, and deleting the
// extension restores the built-in type.
func TestBuiltInTypeExtended(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	login := typeAt(t, e, "GET", "/v1/event-types/authentication/login", e.read, "", 200)
	if !login.BuiltIn || !slices.Equal(login.statusNames(), []string{"attempted", "succeeded", "failed"}) ||
		!slices.Equal(login.TerminalStatuses, []string{"succeeded", "failed"}) || login.CreatedAt != "" {
		t.Fatalf("built-in login: %+v", login)
	}
	for _, s := range login.Statuses {
		if !s.BuiltIn || s.Description == "" {
			t.Errorf("built-in status %+v", s)
		}
	}
	// A challenge comes between attempted and the outcome.
	e.do("POST", "/v1/events", e.ingest, loginEvent("L-9", "cust-9", "challenged", testNow)).wantStatus(t, 400)
	ext := `{
		"statuses": [{"name":"attempted"},{"name":"succeeded","persist":true},{"name":"failed"},
			{"name":"challenged","description":"A second factor was asked for.","workflows":["sendOtp"]}],
		"transitions": {"attempted":["succeeded","failed","challenged"],"challenged":["succeeded","failed"]}
	}`
	got := typeAt(t, e, "PUT", "/v1/event-types/authentication/login", e.admin, ext, 200)
	if !got.BuiltIn || !slices.Equal(got.statusNames(), []string{"attempted", "succeeded", "failed", "challenged"}) ||
		got.Statuses[3].BuiltIn || !got.Statuses[0].BuiltIn || got.Statuses[0].Description == "" ||
		got.LifecycleIDPointer != "/data/external_login_id" || len(got.Schema) == 0 ||
		!slices.Equal(got.TerminalStatuses, []string{"succeeded", "failed"}) {
		t.Errorf("extended login: %+v", got)
	}
	var list struct{ EventTypes []typeAnswer }
	e.do("GET", "/v1/event-types", e.read, "").wantStatus(t, 200).json(t, &list)
	for _, ty := range list.EventTypes {
		if ty.Type == "login" && len(ty.Statuses) != 4 {
			t.Errorf("listed login has statuses %v", ty.statusNames())
		}
	}

	first := testNow.Truncate(time.Second)
	for i, status := range []string{"attempted", "challenged", "succeeded"} {
		e.do("POST", "/v1/events", e.ingest, loginEvent("L-9", "cust-9", status, first.Add(time.Duration(i)*time.Minute))).wantStatus(t, 201)
	}
	var l lifecycleAnswer
	e.do("GET", "/v1/lifecycles/L-9", e.read, "").wantStatus(t, 200).json(t, &l)
	if l.Status != "succeeded" || !l.Terminal || !slices.Equal(l.statuses(), []string{"attempted", "challenged", "succeeded"}) {
		t.Errorf("lifecycle %+v", l)
	}

	// Another account's login is untouched.
	got = typeAt(t, e, "GET", "/v1/event-types/authentication/login", e.other, "", 200)
	if len(got.Statuses) != 3 {
		t.Errorf("account other's login has statuses %v", got.statusNames())
	}
	// Deleting the extension restores the built-in type.
	e.do("DELETE", "/v1/event-types/authentication/login", e.admin, "").wantStatus(t, 204)
	got = typeAt(t, e, "GET", "/v1/event-types/authentication/login", e.read, "", 200)
	if !reflect.DeepEqual(got, login) {
		t.Errorf("after delete\n got %+v\nwant %+v", got, login)
	}
	e.do("POST", "/v1/events", e.ingest, loginEvent("L-10", "cust-9", "challenged", first)).wantStatus(t, 400)
	// The built-in type itself cannot be deleted.
	e.do("DELETE", "/v1/event-types/authentication/login", e.admin, "").wantStatus(t, 409)
}

func TestSchemaServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("GET", "/v1/schemas/loginEventSchema", e.read, "").wantStatus(t, 200)
	if r.mediaType() != "application/schema+json" {
		t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
	}
	var builtin json.RawMessage
	for _, ty := range herald.BuiltinEventTypes() {
		if ty.Type == "login" {
			builtin = ty.Schema
		}
	}
	if !sameJSON(t, r.body, builtin) {
		t.Errorf("loginEventSchema\n got %s\nwant %s", r.body, builtin)
	}

	// A type without a schema serves one that accepts any data.
	e.do("POST", "/v1/event-types", e.admin, `{"category":"payments","type":"cardVoided"}`).wantStatus(t, 201)
	r = e.do("GET", "/v1/schemas/cardVoidedEventSchema", e.read, "").wantStatus(t, 200)
	var schema map[string]any
	r.json(t, &schema)
	if schema["type"] != "object" {
		t.Errorf("cardVoidedEventSchema %s", r.body)
	}

	for _, name := range []string{"nopeEventSchema", "login", "EventSchema"} {
		e.do("GET", "/v1/schemas/"+name, e.read, "").wantStatus(t, 404)
	}
	// A schema is the account's: another account does not see it.
	e.do("GET", "/v1/schemas/cardVoidedEventSchema", e.other, "").wantStatus(t, 404)
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// TestUnknownTypesRejected switches the account to refusing unregistered
// types: such an event is then refused, alone or in a batch, while
// registered types and other accounts carry on.
func TestUnknownTypesRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	unknown := event(map[string]any{"category": "payments", "type": "cardCharged"})
	var s herald.Settings
	e.do("GET", "/v1/settings", e.read, "").wantStatus(t, 200).json(t, &s)
	if s.UnknownTypes != "accept" {
		t.Errorf("default settings %+v", s)
	}
	e.do("POST", "/v1/events", e.ingest, unknown).wantStatus(t, 201)

	e.do("PUT", "/v1/settings", e.admin, `{"unknownTypes":"reject"}`).wantStatus(t, 200).json(t, &s)
	if s.UnknownTypes != "reject" {
		t.Errorf("put settings answered %+v", s)
	}
	e.do("GET", "/v1/settings", e.read, "").wantStatus(t, 200).json(t, &s)
	if s.UnknownTypes != "reject" {
		t.Errorf("settings read back %+v", s)
	}
	p := e.do("POST", "/v1/events", e.ingest, unknown).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/type"}) || !strings.Contains(p.Detail, "unknownTypes") {
		t.Errorf("unregistered type refused with %+v", p)
	}
	e.do("POST", "/v1/events", e.ingest, event(nil)).wantStatus(t, 201) // a built-in type
	var a batchAnswer
	e.do("POST", "/v1/events/batch", e.ingest, batch(event(nil), unknown)).wantStatus(t, 200).json(t, &a)
	if got := a.outcome(); !slices.Equal(got, []string{"created", "failed:invalid /events/1/type"}) {
		t.Errorf("batch %v", got)
	}
	e.do("POST", "/v1/events", e.other, unknown).wantStatus(t, 201) // another account still accepts them
	e.do("PUT", "/v1/settings", e.read, `{"unknownTypes":"accept"}`).wantStatus(t, 403)

	// A field left out takes its default.
	e.do("PUT", "/v1/settings", e.admin, `{}`).wantStatus(t, 200).json(t, &s)
	if s.UnknownTypes != "accept" {
		t.Errorf("settings after {}: %+v", s)
	}
	e.do("POST", "/v1/events", e.ingest, unknown).wantStatus(t, 201)

	for _, c := range []struct{ body, pointer string }{
		{`{"unknownTypes":"maybe"}`, "/unknownTypes"},
		{`{"unknownTypes":true}`, "/unknownTypes"},
		{`{"colour":"red"}`, "/colour"},
	} {
		p := e.do("PUT", "/v1/settings", e.admin, c.body).wantStatus(t, 400).problem(t)
		if !slices.Equal(pointers(p), []string{c.pointer}) {
			t.Errorf("%s: pointers %q, want %q", c.body, pointers(p), c.pointer)
		}
	}
}

// TestSharedCatalog passes the server the catalog the rest of the process
// uses: a change made through the API is seen by it at once.
func TestSharedCatalog(t *testing.T) {
	t.Parallel()
	var shared *catalog.Catalog
	e := newEnv(t, func(c *Config) {
		shared = catalog.New(c.EventTypes, c.Settings, catalog.Options{Now: c.Now, TTL: time.Hour})
		c.Catalog = shared
	})
	ctx := context.Background()
	if _, err := shared.EventType(ctx, "acme", "payments", "cardCharged"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("before: %v", err)
	}
	e.do("POST", "/v1/event-types", e.admin, cardCharged).wantStatus(t, 201)
	if _, err := shared.EventType(ctx, "acme", "payments", "cardCharged"); err != nil {
		t.Errorf("the shared catalog does not see the new type: %v", err)
	}
	e.do("PUT", "/v1/settings", e.admin, `{"unknownTypes":"reject"}`).wantStatus(t, 200)
	if s, err := shared.Settings(ctx, "acme"); err != nil || s.UnknownTypes != "reject" {
		t.Errorf("the shared catalog has settings %+v, %v", s, err)
	}
}

// TestCatalogDown checks that events are not stored unchecked when the
// catalog cannot be read: the request fails whole, with a ref.
func TestCatalogDown(t *testing.T) {
	t.Parallel()
	storeDown := errors.New("SQLITE_IOERR: disk I/O error in table event_types")
	for _, c := range []struct{ path, body string }{
		{"/v1/events", event(nil)},
		{"/v1/events/batch", batch(event(nil), event(nil))},
	} {
		e := newEnv(t)
		e.store.fail("FindEventTypes", storeDown)
		r := e.do("POST", c.path, e.ingest, c.body).wantStatus(t, 500)
		checkInternal(t, e, r, storeDown.Error())
		if _, n := e.store.calls(); n != 0 {
			t.Errorf("%s: the store was asked to append %d times", c.path, n)
		}
	}
}

// A type read with GET can be changed and sent back with PUT as it is:
// the fields only the server sets are ignored, not refused.
func TestEventTypeGetModifyPut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var login map[string]any
	e.do("GET", "/v1/event-types/authentication/login", e.read, "").wantStatus(t, 200).json(t, &login)
	statuses := login["statuses"].([]any)
	login["statuses"] = append(statuses, map[string]any{"name": "challenged", "description": "asked for a second factor", "builtIn": true})
	login["createdAt"], login["builtIn"] = "2020-01-01T00:00:00Z", false
	body, err := json.Marshal(login)
	if err != nil {
		t.Fatal(err)
	}
	var got herald.EventType
	e.do("PUT", "/v1/event-types/authentication/login", e.admin, string(body)).wantStatus(t, 200).json(t, &got)
	if s := got.Status("challenged"); s == nil || s.BuiltIn || !got.BuiltIn || got.CreatedAt.Year() == 2020 {
		t.Errorf("after PUT: challenged %+v, builtIn %v, createdAt %v: server-set fields must be the server's", s, got.BuiltIn, got.CreatedAt)
	}
}
