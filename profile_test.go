package herald_test

import (
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

func TestProfilePersistsOnlyFromPersistingStatuses(t *testing.T) {
	login := builtin(t, "authentication/login")
	p := herald.NewProfile("acme", "CUS1")
	attempted := stored(1, "authentication", "login", "attempted", 0, `{"external_login_id":"l1","ip_address":"10.0.0.1"}`)
	if err := p.Apply(attempted, login); err != nil {
		t.Fatal(err)
	}
	if len(p.Attributes) != 0 || p.EventCount != 1 || p.Counts["authentication/login"] != 1 {
		t.Fatalf("after attempted: %d attributes, %d events, counts %v", len(p.Attributes), p.EventCount, p.Counts)
	}
	succeeded := stored(2, "authentication", "login", "succeeded", time.Second, `{"external_login_id":"l1","ip_address":"10.0.0.2"}`)
	if err := p.Apply(succeeded, login); err != nil {
		t.Fatal(err)
	}
	a, ok := p.Attributes["ip_address"]
	if !ok || string(a.Value) != `"10.0.0.2"` || a.EventID != "ev-2" || a.Seq != 2 {
		t.Errorf("ip_address = %+v", a)
	}
	// An older persisting event arriving late does not overwrite.
	late := stored(3, "authentication", "login", "succeeded", -time.Hour, `{"ip_address":"10.9.9.9"}`)
	if err := p.Apply(late, login); err != nil {
		t.Fatal(err)
	}
	if a := p.Attributes["ip_address"]; string(a.Value) != `"10.0.0.2"` {
		t.Errorf("ip_address = %s after a late older event", a.Value)
	}
	if !p.FirstSeenAt.Equal(t0.Add(-time.Hour)) || !p.LastSeenAt.Equal(t0.Add(time.Second)) || p.EventCount != 3 {
		t.Errorf("seen %v..%v, %d events", p.FirstSeenAt, p.LastSeenAt, p.EventCount)
	}
}

func TestProfileFields(t *testing.T) {
	typ := &herald.EventType{Category: "profile", Type: "addressChanged", Persist: true,
		ProfileFields: []string{"/data/address/city", "/data/email"}}
	p := herald.NewProfile("acme", "CUS1")
	e := stored(1, "profile", "addressChanged", "", 0, `{"address":{"city":"Lyon","zip":"69001"},"phone":"1"}`)
	if err := p.Apply(e, typ); err != nil {
		t.Fatal(err)
	}
	if len(p.Attributes) != 1 || string(p.Attributes["address/city"].Value) != `"Lyon"` {
		t.Errorf("attributes = %v, want only address/city", p.Attributes)
	}
}

func TestEntityID(t *testing.T) {
	cases := []struct {
		e    herald.Event
		want string
	}{
		{herald.Event{CoreCustomerID: "C1", AgentID: "A1", AgentType: "customer"}, "C1"},
		{herald.Event{AgentID: "A1", AgentType: "Customer"}, "A1"},
		{herald.Event{AgentID: "A1", AgentType: "employee"}, ""},
		{herald.Event{}, ""},
	}
	for _, c := range cases {
		if got := c.e.EntityID(); got != c.want {
			t.Errorf("EntityID(%+v) = %q, want %q", c.e, got, c.want)
		}
	}
}

func TestEventTypeValidate(t *testing.T) {
	base := func() *herald.EventType {
		return &herald.EventType{Category: "payments", Type: "refund",
			Statuses:         []herald.StatusDef{{Name: "requested"}, {Name: "paid"}},
			TerminalStatuses: []string{"paid"}}
	}
	cases := []struct {
		name    string
		change  func(*herald.EventType)
		pointer string
	}{
		{"valid", func(*herald.EventType) {}, ""},
		{"terminal not a status", func(t *herald.EventType) { t.TerminalStatuses = []string{"gone"} }, "/terminalStatuses/0"},
		{"transition from unknown", func(t *herald.EventType) { t.Transitions = map[string][]string{"x": {"paid"}} }, "/transitions/x"},
		{"transition to unknown", func(t *herald.EventType) { t.Transitions = map[string][]string{"requested": {"paid", "y"}} }, "/transitions/requested/1"},
		{"pointer without slash", func(t *herald.EventType) { t.LifecycleIDPointer = "data/id" }, "/lifecycleIdPointer"},
		{"pointer outside data", func(t *herald.EventType) { t.LifecycleIDPointer = "/primaryId" }, "/lifecycleIdPointer"},
		{"bad escape", func(t *herald.EventType) { t.ProfileFields = []string{"/data/a~2b"} }, "/profileFields/0"},
		{"status twice", func(t *herald.EventType) { t.Statuses = append(t.Statuses, herald.StatusDef{Name: "paid"}) }, "/statuses/2/name"},
		{"bad type name", func(t *herald.EventType) { t.Type = "9lives" }, "/type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			typ := base()
			c.change(typ)
			err := typ.Validate()
			if c.pointer == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			var he *herald.Error
			if !errorAs(err, &he) || he.Code != herald.EINVALID || he.Fields[0].Pointer != c.pointer {
				t.Fatalf("Validate = %v, want EINVALID at %s", err, c.pointer)
			}
		})
	}
}

func TestResolvePointer(t *testing.T) {
	doc := []byte(`{"a":{"b~c":[10,{"d/e":"x"}]},"n":null}`)
	cases := []struct {
		p, want string
		ok      bool
	}{
		{"", string(doc), true},
		{"/a/b~0c/0", "10", true},
		{"/a/b~0c/1/d~1e", `"x"`, true},
		{"/n", "null", true},
		{"/a/b~0c/2", "", false},
		{"/a/b~0c/01", "", false},
		{"/missing", "", false},
		{"/n/x", "", false},
	}
	for _, c := range cases {
		got, ok := herald.ResolvePointer(doc, c.p)
		if ok != c.ok || (ok && string(got) != c.want) {
			t.Errorf("ResolvePointer(%q) = %s, %v; want %s, %v", c.p, got, ok, c.want, c.ok)
		}
	}
}
