package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/catalog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memTypes is an in-memory herald.EventTypeService that keeps the
// contract's rules: CreatedAt kept on replace, type names unique across
// categories, ENOTFOUND on deleting what is not stored.
type memTypes struct {
	mu    sync.Mutex
	rows  map[string][]*herald.EventType // by account
	finds atomic.Int64
	fail  error // returned by every call when set
}

func copyType(t *herald.EventType) *herald.EventType {
	b, err := json.Marshal(t)
	if err != nil {
		panic(err)
	}
	var c herald.EventType
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	c.AccountID = t.AccountID
	return &c
}

func (s *memTypes) FindEventTypes(ctx context.Context, accountID string) ([]*herald.EventType, error) {
	s.finds.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	var out []*herald.EventType
	for _, t := range s.rows[accountID] {
		out = append(out, copyType(t))
	}
	return out, nil
}

func (s *memTypes) FindEventType(ctx context.Context, accountID, category, typ string) (*herald.EventType, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.rows[accountID] {
		if t.Category == category && t.Type == typ {
			return copyType(t), nil
		}
	}
	return nil, herald.Errorf(herald.ENOTFOUND, "no such type")
}

func (s *memTypes) CreateEventType(ctx context.Context, t *herald.EventType) error {
	if _, err := s.FindEventType(ctx, t.AccountID, t.Category, t.Type); err == nil {
		return herald.Errorf(herald.ECONFLICT, "event type %s already exists", t.Key())
	}
	_, err := s.PutEventType(ctx, t)
	return err
}

func (s *memTypes) PutEventType(ctx context.Context, t *herald.EventType) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rows == nil {
		s.rows = map[string][]*herald.EventType{}
	}
	rows := s.rows[t.AccountID]
	for i, r := range rows {
		switch {
		case r.Category == t.Category && r.Type == t.Type:
			c := copyType(t)
			c.CreatedAt = r.CreatedAt
			rows[i] = c
			return false, nil
		case r.Type == t.Type:
			return false, herald.Errorf(herald.ECONFLICT, "type name taken")
		}
	}
	s.rows[t.AccountID] = append(rows, copyType(t))
	return true, nil
}

func (s *memTypes) DeleteEventType(ctx context.Context, accountID, category, typ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := s.rows[accountID]
	for i, r := range rows {
		if r.Category == category && r.Type == typ {
			s.rows[accountID] = slices.Delete(rows, i, i+1)
			return nil
		}
	}
	return herald.Errorf(herald.ENOTFOUND, "no such type")
}

// memSettings is an in-memory herald.SettingsService.
type memSettings struct {
	mu    sync.Mutex
	rows  map[string]herald.Settings
	finds atomic.Int64
}

func (s *memSettings) FindSettings(ctx context.Context, accountID string) (*herald.Settings, error) {
	s.finds.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.rows[accountID]; ok {
		return &v, nil
	}
	return herald.DefaultSettings(), nil
}

func (s *memSettings) PutSettings(ctx context.Context, accountID string, v *herald.Settings) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rows == nil {
		s.rows = map[string]herald.Settings{}
	}
	s.rows[accountID] = *v
	return nil
}

// clock is a clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	cat      *catalog.Catalog
	types    *memTypes
	settings *memSettings
	clock    *clock
}

func setup(t testing.TB, opts catalog.Options) *fixture {
	t.Helper()
	f := &fixture{types: &memTypes{}, settings: &memSettings{}, clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	if opts.Now == nil {
		opts.Now = f.clock.Now
	}
	f.cat = catalog.New(f.types, f.settings, opts)
	return f
}

// order is a custom type: two statuses, a schema and a lifecycle pointer
// to a number.
func order() *herald.EventType {
	return &herald.EventType{
		AccountID: "acc",
		Category:  "commerce",
		Type:      "order",
		Schema: json.RawMessage(`{
			"type": "object",
			"required": ["order_no"],
			"properties": {"order_no": {"type": ["integer", "string"]}, "total": {"type": "number", "minimum": 0}}
		}`),
		Statuses:           []herald.StatusDef{{Name: "placed", Description: "placed"}, {Name: "shipped", Description: "shipped", Persist: true}},
		TerminalStatuses:   []string{"shipped"},
		Transitions:        map[string][]string{"placed": {"shipped"}},
		LifecycleIDPointer: "/data/order_no",
	}
}

func pointers(err error) []string {
	var he *herald.Error
	if !errors.As(err, &he) {
		return nil
	}
	var ps []string
	for _, f := range he.Fields {
		ps = append(ps, f.Pointer)
	}
	return ps
}

func detail(err error, pointer string) string {
	var he *herald.Error
	if errors.As(err, &he) {
		for _, f := range he.Fields {
			if f.Pointer == pointer {
				return f.Detail
			}
		}
	}
	return ""
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := herald.ErrorCode(err); got != code {
		t.Fatalf("error code %q, want %q (error: %v)", got, code, err)
	}
}

func TestEventTypesMergesBuiltinsAndStored(t *testing.T) {
	t.Parallel()
	f := setup(t, catalog.Options{})
	ctx := context.Background()
	if err := f.cat.CreateEventType(ctx, order()); err != nil {
		t.Fatal(err)
	}
	ext := &herald.EventType{AccountID: "acc", Category: "authentication", Type: "login", Description: "our logins"}
	if _, err := f.cat.PutEventType(ctx, ext); err != nil {
		t.Fatal(err)
	}

	types, err := f.cat.EventTypes(ctx, "acc")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, typ := range types {
		keys = append(keys, typ.Key())
	}
	want := []string{"authentication/login", "authentication/sessionEnded", "authentication/userLoggedIn", "authentication/userLoggedOut",
		"commerce/order", "profiles/profileAttributesSet", "transactions/transaction", "transfers/singleTransferCreated"}
	if !slices.Equal(keys, want) {
		t.Fatalf("types %v, want %v", keys, want)
	}
	for _, typ := range types {
		if typ.AccountID != "acc" {
			t.Errorf("%s: AccountID %q", typ.Key(), typ.AccountID)
		}
		if got, want := typ.BuiltIn, typ.Key() != "commerce/order"; got != want {
			t.Errorf("%s: BuiltIn %v, want %v", typ.Key(), got, want)
		}
	}
	if types[0].Description != "our logins" {
		t.Errorf("login description %q: the account's extension should replace the default", types[0].Description)
	}

	// Another account sees only the defaults.
	other, err := f.cat.EventType(ctx, "other", "authentication", "login")
	if err != nil {
		t.Fatal(err)
	}
	if other.Description == "our logins" {
		t.Error("one account's extension leaked into another's catalog")
	}
	_, err = f.cat.EventType(ctx, "other", "commerce", "order")
	wantCode(t, err, herald.ENOTFOUND)

	// Callers get copies: changing one changes nothing in the catalog.
	types[0].Statuses[0].Name = "changed"
	again, _ := f.cat.EventType(ctx, "acc", "authentication", "login")
	if again.Statuses[0].Name != "attempted" {
		t.Errorf("status renamed in the catalog by a caller: %q", again.Statuses[0].Name)
	}
}

func TestCreateEventTypeRefusesBadDefinitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		change   func(*herald.EventType)
		pointers []string
		detail   string // in the first field's detail
	}{
		{"schema type misspelt", func(t *herald.EventType) { t.Schema = json.RawMessage(`{"type":"objec"}`) },
			[]string{"/schema/type"}, `enum: must be one of "array", "boolean", "integer", "null", "number", "object", "string"`},
		{"schema regex does not compile", func(t *herald.EventType) {
			t.Schema = json.RawMessage(`{"properties":{"a":{"type":"string","pattern":"(("}}}`)
		}, []string{"/schema/properties/a/pattern"}, "missing closing )"},
		{"schema keyword of wrong type", func(t *herald.EventType) {
			t.Schema = json.RawMessage(`{"properties":{"a":{"minLength":-1}},"required":"a"}`)
		}, []string{"/schema/properties/a/minLength", "/schema/required"}, "minimum: got -1, want 0"},
		{"schema is an array", func(t *herald.EventType) { t.Schema = json.RawMessage(`[]`) },
			[]string{"/schema"}, "got array, want boolean or object"},
		{"schema refers to a file", func(t *herald.EventType) { t.Schema = json.RawMessage(`{"$ref":"file:///etc/passwd"}`) },
			[]string{"/schema"}, `cannot load "file:///etc/passwd"`},
		{"schema refers to the network", func(t *herald.EventType) {
			t.Schema = json.RawMessage(`{"$ref":"https://example.com/schema.json"}`)
		}, []string{"/schema"}, `cannot load "https://example.com/schema.json"`},
		{"schema refers to nothing", func(t *herald.EventType) { t.Schema = json.RawMessage(`{"$ref":"#/$defs/none"}`) },
			[]string{"/schema"}, "not found"},
		{"schema not JSON", func(t *herald.EventType) { t.Schema = json.RawMessage(`{"type":`) },
			[]string{"/schema"}, "is not valid JSON"},
		{"terminal status not a status", func(t *herald.EventType) { t.TerminalStatuses = []string{"shipped", "lost"} },
			[]string{"/terminalStatuses/1"}, `"lost" is not one of the type's statuses`},
		{"transition to an unknown status", func(t *herald.EventType) { t.Transitions = map[string][]string{"placed": {"shipped", "lost"}} },
			[]string{"/transitions/placed/1"}, `"lost"`},
		{"transition from an unknown status", func(t *herald.EventType) { t.Transitions = map[string][]string{"lost/found": {"shipped"}} },
			[]string{"/transitions/lost~1found"}, `"lost/found"`},
		{"lifecycle pointer not a pointer", func(t *herald.EventType) { t.LifecycleIDPointer = "data.order_no" },
			[]string{"/lifecycleIdPointer"}, "not a JSON Pointer"},
		{"lifecycle pointer outside data", func(t *herald.EventType) { t.LifecycleIDPointer = "/id" },
			[]string{"/lifecycleIdPointer"}, "must point into data"},
		{"profile field not a pointer", func(t *herald.EventType) { t.ProfileFields = []string{"/data/total", "/data/a~2"} },
			[]string{"/profileFields/1"}, "~ must be followed by 0 or 1"},
		{"bad names", func(t *herald.EventType) { t.Category, t.Type = "", "9lives" },
			[]string{"/category", "/type"}, "must not be empty"},
		{"several faults at once", func(t *herald.EventType) {
			t.Schema = json.RawMessage(`{"type":"objec"}`)
			t.TerminalStatuses = []string{"lost"}
			t.LifecycleIDPointer = "order_no"
		}, []string{"/terminalStatuses/0", "/lifecycleIdPointer", "/schema/type"}, `"lost"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, catalog.Options{})
			def := order()
			tt.change(def)
			err := f.cat.CreateEventType(context.Background(), def)
			wantCode(t, err, herald.EINVALID)
			if got := pointers(err); !slices.Equal(got, tt.pointers) {
				t.Fatalf("pointers %q, want %q (error: %v)", got, tt.pointers, err)
			}
			if d := detail(err, tt.pointers[0]); !strings.Contains(d, tt.detail) {
				t.Errorf("detail %q does not say %q", d, tt.detail)
			}
			if n := f.types.finds.Load(); n != 0 {
				t.Errorf("the store was read %d times for a definition refused before", n)
			}
			if rows, _ := f.types.FindEventTypes(context.Background(), "acc"); len(rows) != 0 {
				t.Errorf("a refused definition was stored: %v", rows[0].Key())
			}
		})
	}
}

func TestCreateEventTypeAcceptsSelfContainedSchemas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	for i, schema := range []string{
		`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"n":{"type":"integer"}}}`,
		`{"$defs":{"money":{"type":"string","pattern":"^[0-9]+$"}},"properties":{"amount":{"$ref":"#/$defs/money"}}}`,
		`true`,
		`null`, // the same as no schema
	} {
		def := &herald.EventType{AccountID: "acc", Category: "misc", Type: fmt.Sprintf("t%d", i), Schema: json.RawMessage(schema)}
		if err := f.cat.CreateEventType(ctx, def); err != nil {
			t.Errorf("%s: %v", schema, err)
		}
	}
	err := f.cat.Prepare(ctx, "acc", event("misc", "t1", "", `{"amount":"12.5"}`))
	if d := detail(err, "/data/amount"); !strings.Contains(d, "pattern") {
		t.Errorf("$ref not followed: %v", err)
	}
	if err := f.cat.Prepare(ctx, "acc", event("misc", "t0", "", `{"n":1.5}`)); detail(err, "/data/n") == "" {
		t.Errorf("draft-07 schema not applied: %v", err)
	}
}

func TestCreateEventTypeConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	if err := f.cat.CreateEventType(ctx, order()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		def  *herald.EventType
		want string // in the message
	}{
		{"existing type", order(), "already exists"},
		{"built-in type", &herald.EventType{AccountID: "acc", Category: "authentication", Type: "login"}, "built-in"},
		{"name of a custom type in another category", func() *herald.EventType {
			d := order()
			d.Category = "shop"
			return d
		}(), "commerce/order"},
		{"name of a built-in type in another category", &herald.EventType{AccountID: "acc", Category: "shop", Type: "transaction"}, "transactions/transaction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.cat.CreateEventType(ctx, tt.def)
			wantCode(t, err, herald.ECONFLICT)
			if !strings.Contains(herald.ErrorMessage(err), tt.want) {
				t.Errorf("message %q does not name %q", herald.ErrorMessage(err), tt.want)
			}
		})
	}
	// PUT keeps the names unique too.
	d := order()
	d.Category = "shop"
	_, err := f.cat.PutEventType(ctx, d)
	wantCode(t, err, herald.ECONFLICT)
}

func TestCreateAndPutSetTimesAndFlags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	d := order()
	d.BuiltIn = true
	d.Statuses[0].BuiltIn = true
	d.CreatedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := f.cat.CreateEventType(ctx, d); err != nil {
		t.Fatal(err)
	}
	created := f.clock.Now()
	if d.BuiltIn || d.Statuses[0].BuiltIn {
		t.Error("a custom type kept the BuiltIn flags the client sent")
	}
	if !d.CreatedAt.Equal(created) || !d.UpdatedAt.Equal(created) {
		t.Errorf("times %v %v, want %v", d.CreatedAt, d.UpdatedAt, created)
	}

	f.clock.Advance(time.Minute)
	d = order()
	d.Description = "changed"
	isNew, err := f.cat.PutEventType(ctx, d)
	if err != nil || isNew {
		t.Fatalf("replace: created %v, err %v", isNew, err)
	}
	if !d.CreatedAt.Equal(created) || !d.UpdatedAt.Equal(created.Add(time.Minute)) {
		t.Errorf("times after replace %v %v, want %v %v", d.CreatedAt, d.UpdatedAt, created, created.Add(time.Minute))
	}
	got, err := f.cat.EventType(ctx, "acc", "commerce", "order")
	if err != nil || got.Description != "changed" {
		t.Fatalf("after replace: %+v, %v", got, err)
	}

	d = order()
	d.Type = "refund"
	d.LifecycleIDPointer = ""
	if isNew, err := f.cat.PutEventType(ctx, d); err != nil || !isNew {
		t.Fatalf("put new type: created %v, err %v", isNew, err)
	}
}

func transaction() *herald.EventType {
	for _, t := range herald.BuiltinEventTypes() {
		if t.Type == "transaction" {
			t.AccountID = "acc"
			return t
		}
	}
	panic("no built-in transaction type")
}

func TestPutExtendsBuiltinType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		change   func(*herald.EventType)
		pointers []string // nil: accepted
	}{
		{"unchanged", func(*herald.EventType) {}, nil},
		{"custom statuses, workflows, persist, transitions", func(t *herald.EventType) {
			t.Statuses = append(t.Statuses,
				herald.StatusDef{Name: "reviewing", Description: "under manual review", Workflows: []string{"notify-fraud-team"}},
				herald.StatusDef{Name: "refunded", Description: "money returned", Persist: true})
			t.Statuses[1].Persist = true
			t.Statuses[1].Workflows = []string{"send-receipt"}
			t.TerminalStatuses = append(t.TerminalStatuses, "refunded")
			t.Transitions["pending"] = append(t.Transitions["pending"], "reviewing")
			t.Transitions["reviewing"] = []string{"approved", "denied"}
			t.Transitions["approved"] = []string{"refunded"}
		}, nil},
		{"only the additions: the rest is the built-in's", func(t *herald.EventType) {
			t.Schema, t.Description, t.LifecycleIDPointer, t.Transitions, t.TerminalStatuses = nil, "", "", nil, nil
			t.Statuses = nil
			t.ProfileFields = []string{"/data/amount"}
		}, nil},
		{"same schema written differently", func(t *herald.EventType) {
			var v any
			if err := json.Unmarshal(t.Schema, &v); err != nil {
				panic(err)
			}
			t.Schema, _ = json.MarshalIndent(v, "", "    ")
		}, nil},
		{"schema changed", func(t *herald.EventType) { t.Schema = json.RawMessage(`{"type":"object"}`) }, []string{"/schema"}},
		{"lifecycle pointer changed", func(t *herald.EventType) { t.LifecycleIDPointer = "/data/account_id" }, []string{"/lifecycleIdPointer"}},
		{"built-in status removed", func(t *herald.EventType) {
			t.Statuses = slices.DeleteFunc(t.Statuses, func(s herald.StatusDef) bool { return s.Name == "cancelled" })
			t.TerminalStatuses = slices.DeleteFunc(t.TerminalStatuses, func(s string) bool { return s == "cancelled" })
			t.Transitions["pending"] = slices.DeleteFunc(t.Transitions["pending"], func(s string) bool { return s == "cancelled" })
		}, []string{"/statuses"}},
		{"no statuses at all", func(t *herald.EventType) {
			t.Statuses, t.TerminalStatuses, t.Transitions = []herald.StatusDef{}, []string{}, map[string][]string{}
		}, []string{"/statuses", "/statuses", "/statuses", "/statuses", "/statuses"}},
		{"terminal status made non-terminal", func(t *herald.EventType) { t.TerminalStatuses = t.TerminalStatuses[1:] }, []string{"/terminalStatuses"}},
		{"non-terminal status made terminal", func(t *herald.EventType) { t.TerminalStatuses = append(t.TerminalStatuses, "pending") }, []string{"/terminalStatuses/4"}},
		{"built-in transition removed", func(t *herald.EventType) { t.Transitions["pending"] = []string{"approved", "denied", "cancelled"} }, []string{"/transitions/pending"}},
		{"built-in transitions all removed", func(t *herald.EventType) {
			t.Transitions = map[string][]string{"approved": {"denied"}}
		}, []string{"/transitions", "/transitions", "/transitions", "/transitions"}},
		// Breaking the built-in type is reported alone: the other faults
		// are often its echo.
		{"faults of both kinds", func(t *herald.EventType) {
			t.Schema = json.RawMessage(`{"type":"object"}`)
			t.TerminalStatuses = append(t.TerminalStatuses, "settled")
		}, []string{"/schema"}},
		{"a fault once the built-in type is kept", func(t *herald.EventType) {
			t.TerminalStatuses = append(t.TerminalStatuses, "settled")
		}, []string{"/terminalStatuses/4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := setup(t, catalog.Options{})
			def := transaction()
			def.BuiltIn = false
			for i := range def.Statuses {
				def.Statuses[i].BuiltIn = false
			}
			tt.change(def)
			created, err := f.cat.PutEventType(ctx, def)
			if tt.pointers != nil {
				wantCode(t, err, herald.EINVALID)
				if got := pointers(err); !slices.Equal(got, tt.pointers) {
					t.Fatalf("pointers %q, want %q (error: %v)", got, tt.pointers, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if created {
				t.Error("extending a built-in type reported it created")
			}
			got, err := f.cat.EventType(ctx, "acc", "transactions", "transaction")
			if err != nil {
				t.Fatal(err)
			}
			builtin := transaction()
			if !got.BuiltIn {
				t.Error("extension not marked built-in")
			}
			for _, s := range got.Statuses {
				if s.BuiltIn != (builtin.Status(s.Name) != nil) {
					t.Errorf("status %s: BuiltIn %v", s.Name, s.BuiltIn)
				}
			}
			for _, s := range builtin.Statuses {
				gs := got.Status(s.Name)
				if gs == nil || gs.Description == "" || got.Terminal(s.Name) != builtin.Terminal(s.Name) {
					t.Errorf("built-in status %s lost or changed: %+v", s.Name, gs)
				}
			}
			if got.LifecycleIDPointer != builtin.LifecycleIDPointer || len(got.Schema) == 0 || got.Description == "" {
				t.Errorf("built-in parts not kept: pointer %q, schema %d bytes, description %q", got.LifecycleIDPointer, len(got.Schema), got.Description)
			}
			if !got.Allows("pending", "failed") {
				t.Error("built-in transition pending → failed lost")
			}
		})
	}
}

func TestExtensionMakesCustomStatusesUsable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	def := &herald.EventType{
		AccountID: "acc", Category: "authentication", Type: "login",
		Statuses: append(loginStatuses(), herald.StatusDef{Name: "challenged", Description: "asked for a second factor"}),
	}
	if _, err := f.cat.PutEventType(ctx, def); err != nil {
		t.Fatal(err)
	}
	e := &herald.Event{Category: "authentication", Type: "login", EventStatus: "challenged", Data: json.RawMessage(`{"external_login_id":"L1"}`)}
	if err := f.cat.Prepare(ctx, "acc", e); err != nil {
		t.Fatalf("custom status refused: %v", err)
	}
	e = &herald.Event{Category: "authentication", Type: "login", EventStatus: "challenged", Data: json.RawMessage(`{"external_login_id":"L1"}`)}
	wantCode(t, f.cat.Prepare(ctx, "other", e), herald.EINVALID)
}

// loginStatuses returns the built-in login statuses as a client might
// send them back: names only.
func loginStatuses() []herald.StatusDef {
	return []herald.StatusDef{{Name: "attempted"}, {Name: "succeeded", Persist: true}, {Name: "failed"}}
}

func TestDeleteEventType(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})

	err := f.cat.DeleteEventType(ctx, "acc", "commerce", "order")
	wantCode(t, err, herald.ENOTFOUND)

	err = f.cat.DeleteEventType(ctx, "acc", "authentication", "login")
	wantCode(t, err, herald.ECONFLICT)
	if !strings.Contains(herald.ErrorMessage(err), "built-in types cannot be deleted") {
		t.Errorf("message %q", herald.ErrorMessage(err))
	}

	if err := f.cat.CreateEventType(ctx, order()); err != nil {
		t.Fatal(err)
	}
	if err := f.cat.DeleteEventType(ctx, "acc", "commerce", "order"); err != nil {
		t.Fatal(err)
	}
	_, err = f.cat.EventType(ctx, "acc", "commerce", "order")
	wantCode(t, err, herald.ENOTFOUND)

	// Deleting an extension brings the built-in default back.
	if _, err := f.cat.PutEventType(ctx, &herald.EventType{AccountID: "acc", Category: "authentication", Type: "login", Description: "ours"}); err != nil {
		t.Fatal(err)
	}
	if err := f.cat.DeleteEventType(ctx, "acc", "authentication", "login"); err != nil {
		t.Fatal(err)
	}
	login, err := f.cat.EventType(ctx, "acc", "authentication", "login")
	if err != nil || login.Description == "ours" || !login.BuiltIn {
		t.Fatalf("after deleting the extension: %+v, %v", login, err)
	}
}

func TestSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	plain := &herald.EventType{AccountID: "acc", Category: "misc", Type: "ping"}
	if err := f.cat.CreateEventType(ctx, plain); err != nil {
		t.Fatal(err)
	}

	s, err := f.cat.Schema(ctx, "acc", "loginEventSchema")
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Required []string }
	if err := json.Unmarshal(s, &login); err != nil || !slices.Equal(login.Required, []string{"external_login_id"}) {
		t.Errorf("login schema %s (%v)", s, err)
	}

	s, err = f.cat.Schema(ctx, "acc", "pingEventSchema")
	if err != nil {
		t.Fatal(err)
	}
	var permissive map[string]string
	if err := json.Unmarshal(s, &permissive); err != nil || permissive["type"] != "object" || !strings.Contains(permissive["$schema"], "2020-12") {
		t.Errorf("schema of a type without one: %s (%v)", s, err)
	}

	for _, name := range []string{"pongEventSchema", "login", "EventSchema", "loginEventSchemas"} {
		_, err := f.cat.Schema(ctx, "acc", name)
		wantCode(t, err, herald.ENOTFOUND)
	}
	_, err = f.cat.Schema(ctx, "other", "pingEventSchema")
	wantCode(t, err, herald.ENOTFOUND)
}

func TestSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	s, err := f.cat.Settings(ctx, "acc")
	if err != nil || s.UnknownTypes != herald.UnknownTypesAccept {
		t.Fatalf("default settings %+v, %v", s, err)
	}
	err = f.cat.PutSettings(ctx, "acc", &herald.Settings{UnknownTypes: "sometimes"})
	wantCode(t, err, herald.EINVALID)
	if got := pointers(err); !slices.Equal(got, []string{"/unknownTypes"}) {
		t.Errorf("pointers %q", got)
	}

	if err := f.cat.PutSettings(ctx, "acc", &herald.Settings{UnknownTypes: herald.UnknownTypesReject}); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.cat.Settings(ctx, "acc"); s.UnknownTypes != herald.UnknownTypesReject {
		t.Errorf("settings after put: %+v", s)
	}
	empty := &herald.Settings{}
	if err := f.cat.PutSettings(ctx, "acc", empty); err != nil {
		t.Fatal(err)
	}
	if empty.UnknownTypes != herald.UnknownTypesAccept {
		t.Errorf("empty field not defaulted: %+v", empty)
	}
}

func event(category, typ, status, data string) *herald.Event {
	e := &herald.Event{Category: category, Type: typ, EventStatus: status}
	if data != "" {
		e.Data = json.RawMessage(data)
	}
	return e
}

func TestPrepare(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	for _, d := range []*herald.EventType{
		order(),
		{AccountID: "acc", Category: "misc", Type: "loose", LifecycleIDPointer: "/data/ref/0/id~1no"},
	} {
		if err := f.cat.CreateEventType(ctx, d); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name      string
		event     *herald.Event
		pointers  []string // nil: accepted
		details   []string // one per pointer, a part of the detail
		lifecycle string   // eventLifecycleId after Prepare
	}{
		{name: "valid transaction",
			event:     event("transactions", "transaction", "pending", `{"external_transaction_id":"T-1","amount":"12.50","currency":"EUR","merchant":{"mcc":"5411"}}`),
			lifecycle: "T-1"},
		{name: "several violations at once",
			event:    event("transactions", "transaction", "settled", `{"external_transaction_id":"T-1","amount":"12,5","direction":"sideways","merchant":{"mcc":"54"},"account_id":7}`),
			pointers: []string{"/data/account_id", "/data/amount", "/data/currency", "/data/direction", "/data/merchant/mcc", "/eventStatus"},
			details: []string{
				"type: got number, want string",
				`pattern: "12,5" does not match ^-?[0-9]+(\.[0-9]+)?$`,
				`required: missing property "currency"`,
				`enum: must be one of "debit", "credit"`,
				`pattern: "54" does not match ^[0-9]{4}$`,
				`"settled" is not a status of transactions/transaction (allowed: pending, approved, denied, cancelled, failed)`,
			}},
		{name: "data absent is an empty object",
			event:    event("authentication", "login", "attempted", ""),
			pointers: []string{"/data/external_login_id"},
			details:  []string{`required: missing property "external_login_id"`}},
		{name: "format is asserted",
			event:    event("transfers", "singleTransferCreated", "", `{"amount":"250.00","scheduledOn":"2026-13-01"}`),
			pointers: []string{"/data/scheduledOn"},
			details:  []string{`format: "2026-13-01" is not a valid date`}},
		{name: "status on a type without statuses",
			event:    event("authentication", "userLoggedIn", "ok", `{}`),
			pointers: []string{"/eventStatus"},
			details:  []string{"defines no statuses"}},
		{name: "type list",
			event:    event("commerce", "order", "", `{"order_no":true}`),
			pointers: []string{"/data/order_no"},
			details:  []string{"type: got boolean, want integer or string"}},
		{name: "sent lifecycle id kept",
			event:     &herald.Event{Category: "transactions", Type: "transaction", EventLifecycleID: "mine", Data: json.RawMessage(`{"external_transaction_id":"T-1","amount":"1","currency":"USD"}`)},
			lifecycle: "mine"},
		{name: "number becomes a lifecycle id",
			event:     event("commerce", "order", "placed", `{"order_no":42}`),
			lifecycle: "42"},
		{name: "number in exponent form",
			event:     event("commerce", "order", "placed", `{"order_no":4.2e1}`),
			lifecycle: "42"},
		{name: "pointer with escapes and an index",
			event:     event("misc", "loose", "", `{"ref":[{"id/no":"R-9"}]}`),
			lifecycle: "R-9"},
		{name: "no value at the pointer, no lifecycle",
			event: event("misc", "loose", "", `{"ref":[]}`)},
		{name: "object at the pointer",
			event:    event("misc", "loose", "", `{"ref":[{"id/no":{"a":1}}]}`),
			pointers: []string{"/data/ref/0/id~1no"},
			details:  []string{"must be a string or number to serve as eventLifecycleId"}},
		{name: "empty string at the pointer",
			event:    event("misc", "loose", "", `{"ref":[{"id/no":""}]}`),
			pointers: []string{"/data/ref/0/id~1no"},
			details:  []string{"must not be empty"}},
		{name: "control character at the pointer",
			event:    event("misc", "loose", "", `{"ref":[{"id/no":"a\u0007b"}]}`),
			pointers: []string{"/data/ref/0/id~1no"},
			details:  []string{"control characters"}},
		{name: "long value at the pointer",
			event:    event("misc", "loose", "", `{"ref":[{"id/no":"`+strings.Repeat("x", 513)+`"}]}`),
			pointers: []string{"/data/ref/0/id~1no"},
			details:  []string{"at most 512 bytes"}},
		{name: "schema fault at the pointer reported once",
			event:    event("transactions", "transaction", "", `{"external_transaction_id":{},"amount":"1","currency":"USD"}`),
			pointers: []string{"/data/external_transaction_id"},
			details:  []string{"type: got object, want string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := f.cat.Prepare(ctx, "acc", tt.event)
			if tt.pointers == nil {
				if err != nil {
					t.Fatal(err)
				}
				if tt.event.Def == nil || tt.event.Def.Key() != tt.event.Category+"/"+tt.event.Type {
					t.Errorf("Def %+v", tt.event.Def)
				}
				if tt.event.EventLifecycleID != tt.lifecycle {
					t.Errorf("eventLifecycleId %q, want %q", tt.event.EventLifecycleID, tt.lifecycle)
				}
				return
			}
			wantCode(t, err, herald.EINVALID)
			if got := pointers(err); !slices.Equal(got, tt.pointers) {
				t.Fatalf("pointers %q, want %q (error: %v)", got, tt.pointers, err)
			}
			for i, p := range tt.pointers {
				if d := detail(err, p); !strings.Contains(d, tt.details[i]) {
					t.Errorf("%s: detail %q does not say %q", p, d, tt.details[i])
				}
			}
			if tt.event.Def != nil || tt.event.EventLifecycleID != "" {
				t.Errorf("a refused event was changed: Def %v, eventLifecycleId %q", tt.event.Def, tt.event.EventLifecycleID)
			}
		})
	}
}

func TestPrepareBoundsTheViolationsListed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	def := &herald.EventType{AccountID: "acc", Category: "misc", Type: "list",
		Schema: json.RawMessage(`{"properties":{"items":{"type":"array","items":{"type":"string"}}}}`)}
	if err := f.cat.CreateEventType(ctx, def); err != nil {
		t.Fatal(err)
	}
	items := strings.Repeat("1,", 149) + "1"
	err := f.cat.Prepare(ctx, "acc", event("misc", "list", "", `{"items":[`+items+`]}`))
	wantCode(t, err, herald.EINVALID)
	ps := pointers(err)
	if len(ps) != 100 {
		t.Fatalf("%d field errors, want 100", len(ps))
	}
	if want := []string{"/data/items/0", "/data/items/1", "/data/items/2"}; !slices.Equal(ps[:3], want) || ps[99] != "/data/items/99" {
		t.Errorf("pointers %q … %q: want them in the order of the array", ps[:3], ps[99])
	}
	if msg := herald.ErrorMessage(err); !strings.HasSuffix(msg, "(and 149 more)") {
		t.Errorf("message %q does not count all 150 violations", msg)
	}
}

func TestPrepareUnknownTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	e := event("authentication", "foo", "whatever", `{"x":1}`)
	if err := f.cat.Prepare(ctx, "acc", e); err != nil || e.Def != nil {
		t.Fatalf("unregistered type with default settings: %v, Def %v", err, e.Def)
	}
	if err := f.cat.PutSettings(ctx, "acc", &herald.Settings{UnknownTypes: herald.UnknownTypesReject}); err != nil {
		t.Fatal(err)
	}
	err := f.cat.Prepare(ctx, "acc", e)
	wantCode(t, err, herald.EINVALID)
	want := "authentication/foo is not a registered event type; this account refuses unregistered types (settings unknownTypes: reject)"
	if d := detail(err, "/type"); d != want {
		t.Errorf("detail %q, want %q", d, want)
	}
	if err := f.cat.Prepare(ctx, "acc", event("authentication", "userLoggedOut", "", "")); err != nil {
		t.Errorf("registered type refused under reject: %v", err)
	}
}

func TestPrepareStoredSchemaThatDoesNotCompile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	// Written around the catalog, as an older version might have.
	bad := order()
	bad.Schema = json.RawMessage(`{"type":"objec"}`)
	if _, err := f.types.PutEventType(ctx, bad); err != nil {
		t.Fatal(err)
	}
	err := f.cat.Prepare(ctx, "acc", event("commerce", "order", "", `{"order_no":1}`))
	wantCode(t, err, herald.EINTERNAL)
	if err := f.cat.Prepare(ctx, "acc", event("authentication", "userLoggedOut", "", "")); err != nil {
		t.Errorf("one bad type broke the account's others: %v", err)
	}
}

func TestStoreErrorsPassThrough(t *testing.T) {
	t.Parallel()
	f := setup(t, catalog.Options{})
	f.types.fail = errors.New("disk on fire")
	err := f.cat.Prepare(context.Background(), "acc", event("authentication", "userLoggedOut", "", ""))
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || herald.ErrorCode(err) != herald.EINTERNAL {
		t.Fatalf("error %v", err)
	}
}

func TestCacheInvalidatedByChangesAndTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{TTL: 10 * time.Second})
	prepare := func() error {
		return f.cat.Prepare(ctx, "acc", event("commerce", "order", "placed", `{"order_no":1}`))
	}
	for range 100 {
		if err := prepare(); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.types.finds.Load(); n != 1 {
		t.Fatalf("store read %d times for 100 events within the TTL, want 1", n)
	}

	// A change through the catalog is seen at once.
	if err := f.cat.CreateEventType(ctx, order()); err != nil {
		t.Fatal(err)
	}
	if err := prepare(); err != nil {
		t.Fatal(err)
	}
	if err := f.cat.Prepare(ctx, "acc", event("commerce", "order", "lost", `{"order_no":1}`)); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("new type not applied at once: %v", err)
	}
	if err := f.cat.PutSettings(ctx, "acc", &herald.Settings{UnknownTypes: herald.UnknownTypesReject}); err != nil {
		t.Fatal(err)
	}
	if err := f.cat.Prepare(ctx, "acc", event("x", "y", "", "")); err == nil {
		t.Fatal("new settings not applied at once")
	}
	if err := f.cat.DeleteEventType(ctx, "acc", "commerce", "order"); err != nil {
		t.Fatal(err)
	}
	if err := f.cat.Prepare(ctx, "acc", event("commerce", "order", "lost", "")); herald.ErrorCode(err) != herald.EINVALID || pointers(err)[0] != "/type" {
		t.Fatalf("deleted type still applied: %v", err)
	}

	// A change made elsewhere (another node) is seen once the TTL passes.
	if err := f.settings.PutSettings(ctx, "acc", herald.DefaultSettings()); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(9 * time.Second)
	if err := f.cat.Prepare(ctx, "acc", event("x", "y", "", "")); err == nil {
		t.Fatal("cache expired before its TTL")
	}
	f.clock.Advance(time.Second)
	if err := f.cat.Prepare(ctx, "acc", event("x", "y", "", "")); err != nil {
		t.Fatalf("cache not expired after its TTL: %v", err)
	}
}

func TestNoCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{TTL: -1})
	for range 3 {
		if err := f.cat.Prepare(ctx, "acc", event("authentication", "userLoggedOut", "", "")); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.types.finds.Load(); n != 3 {
		t.Errorf("store read %d times for 3 events without a cache, want 3", n)
	}
}

func TestSchemasCompiledOncePerProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{TTL: time.Second})
	// Built-in types with the same schema share its compilation.
	schemas := map[string]bool{}
	for _, t := range herald.BuiltinEventTypes() {
		schemas[string(t.Schema)] = true
	}
	builtins := len(schemas)
	for i := range 20 {
		if _, err := f.cat.EventTypes(ctx, fmt.Sprintf("acc-%d", i)); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second) // every load a fresh one
	}
	if n := f.cat.Compilations(); n != builtins {
		t.Errorf("%d compilations for 20 accounts' built-in types, want %d", n, builtins)
	}
	// The same custom schema in two accounts, written differently, is
	// compiled once.
	a, b := order(), order()
	b.AccountID = "acc-2"
	b.Schema = json.RawMessage(`{"properties":{"total":{"minimum":0,"type":"number"},"order_no":{"type":["integer","string"]}},"required":["order_no"],"type":"object"}`)
	for _, d := range []*herald.EventType{a, b} {
		if err := f.cat.CreateEventType(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.cat.Prepare(ctx, "acc-2", event("commerce", "order", "", `{"order_no":1}`)); err != nil {
		t.Fatal(err)
	}
	if n := f.cat.Compilations(); n != builtins+1 {
		t.Errorf("%d compilations, want %d", n, builtins+1)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{TTL: time.Millisecond, Now: time.Now})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Go(func() {
			account := fmt.Sprintf("acc-%d", w%3)
			for i := range 200 {
				e := event("transactions", "transaction", "pending", fmt.Sprintf(`{"external_transaction_id":"T-%d","amount":"1.00","currency":"EUR"}`, i))
				if err := f.cat.Prepare(ctx, account, e); err != nil {
					errs <- fmt.Errorf("prepare: %w", err)
					return
				}
				if e.EventLifecycleID != fmt.Sprintf("T-%d", i) {
					errs <- fmt.Errorf("lifecycle id %q", e.EventLifecycleID)
					return
				}
			}
		})
	}
	for w := range 3 {
		wg.Go(func() {
			account := fmt.Sprintf("acc-%d", w)
			for i := range 50 {
				d := order()
				d.AccountID = account
				d.Description = fmt.Sprint(i)
				if _, err := f.cat.PutEventType(ctx, d); err != nil {
					errs <- fmt.Errorf("put: %w", err)
					return
				}
				if err := f.cat.PutSettings(ctx, account, &herald.Settings{UnknownTypes: herald.UnknownTypesAccept}); err != nil {
					errs <- fmt.Errorf("put settings: %w", err)
					return
				}
				if _, err := f.cat.EventTypes(ctx, account); err != nil {
					errs <- fmt.Errorf("list: %w", err)
					return
				}
				if i%2 == 0 {
					if err := f.cat.DeleteEventType(ctx, account, "commerce", "order"); err != nil {
						errs <- fmt.Errorf("delete: %w", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestConcurrentMissesLoadOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	types := &blockingTypes{memTypes: &memTypes{}, release: make(chan struct{})}
	cat := catalog.New(types, &memSettings{}, catalog.Options{})
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	for range 10 {
		ready.Add(1)
		wg.Go(func() {
			ready.Done()
			if _, err := cat.EventTypes(ctx, "acc"); err != nil {
				t.Error(err)
			}
		})
	}
	// Hold the first load until every caller is on its way: those that
	// miss while it runs must wait for it, not load again. Once it is
	// done, later callers find the cache.
	ready.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for types.memTypes.finds.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no load started")
		}
		time.Sleep(time.Millisecond)
	}
	close(types.release)
	wg.Wait()
	if n := types.memTypes.finds.Load(); n != 1 {
		t.Errorf("%d loads for 10 concurrent misses, want 1", n)
	}
}

// blockingTypes holds every read until release is closed.
type blockingTypes struct {
	*memTypes
	release chan struct{}
}

func (s *blockingTypes) FindEventTypes(ctx context.Context, accountID string) ([]*herald.EventType, error) {
	s.memTypes.finds.Add(1)
	<-s.release
	return nil, nil
}

func BenchmarkPrepare(b *testing.B) {
	ctx := context.Background()
	f := setup(b, catalog.Options{Now: time.Now})
	data := json.RawMessage(`{"external_transaction_id":"tx-7f3a9c21","amount":"1249.90","currency":"EUR","direction":"debit","status":"authorized","account_id":"acct-000123","merchant":{"name":"Corner Grocery","mcc":"5411","city":"Lyon","country":"FR"}}`)
	b.Run("transaction", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e := herald.Event{Category: "transactions", Type: "transaction", EventStatus: "pending", Data: data}
			if err := f.cat.Prepare(ctx, "acc", &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unregistered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e := herald.Event{Category: "payments", Type: "card", EventStatus: "pending", Data: data}
			if err := f.cat.Prepare(ctx, "acc", &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode only", func(b *testing.B) {
		// The floor: decoding data for the validator, which Prepare must do.
		b.ReportAllocs()
		for b.Loop() {
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// An extension stored under an earlier release, when the built-in type had
// fewer statuses, gains what this release's built-in type defines.
func TestStoredExtensionFollowsTheBuiltin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, catalog.Options{})
	old := transaction()
	old.AccountID = "acme"
	old.Statuses = slices.DeleteFunc(old.Statuses, func(s herald.StatusDef) bool { return s.Name == "cancelled" })
	old.TerminalStatuses = slices.DeleteFunc(old.TerminalStatuses, func(s string) bool { return s == "cancelled" })
	old.Transitions = map[string][]string{"pending": {"approved", "denied", "failed", "review"}}
	old.Statuses = append(old.Statuses, herald.StatusDef{Name: "review", Description: "held for review"})
	old.Schema = json.RawMessage(`{"type":"object"}`)
	if _, err := f.types.PutEventType(ctx, old); err != nil {
		t.Fatal(err)
	}
	got, err := f.cat.EventType(ctx, "acme", "transactions", "transaction")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status("cancelled") == nil || !got.Terminal("cancelled") || got.Status("review") == nil {
		t.Errorf("statuses %v, terminal %v: want the built-in cancelled back and the account's review kept", got.StatusNames(), got.TerminalStatuses)
	}
	if !got.Allows("pending", "cancelled") || !got.Allows("pending", "review") {
		t.Errorf("transitions %v: want pending to allow cancelled and review", got.Transitions)
	}
	if string(got.Schema) == `{"type":"object"}` {
		t.Errorf("schema %s: want the built-in schema", got.Schema)
	}
}
