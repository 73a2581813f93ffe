package httpapi

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldhq/herald"
)

func TestUnmatchedRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		method, path string
		want         int
		allow        string
	}{
		{"GET", "/", 404, ""},
		{"GET", "/v1/nothing", 404, ""},
		{"GET", "/v2/events", 404, ""},
		{"DELETE", "/v1/events", 405, "GET, HEAD, POST"},
		{"PUT", "/v1/events/x", 405, "GET, HEAD"},
		{"GET", "/v1/events/batch/more", 404, ""},
		{"POST", "/healthz", 405, "GET, HEAD"},
		{"PATCH", "/v1/keys/k", 405, "DELETE"},
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, e.admin, "").wantStatus(t, c.want)
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
		if p := r.problem(t); p.Instance != c.path || !strings.Contains(p.Detail, c.path) {
			t.Errorf("%s %s: problem %+v", c.method, c.path, p)
		}
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		sent string
		keep bool
	}{
		{"", false},
		{"req-123", true},
		{"0f3c2a6e-2b7c-4c1e-9a53-8f2a4d1e6b70", true},
		{"trace:abc/def+ghi=", true},
		{"has space", false},
		{"quote\"d", false},
		{strings.Repeat("r", 129), false},
	}
	generated := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, c := range cases {
		r := e.do("GET", "/healthz", "", "", "X-Request-Id", c.sent)
		got := r.header.Get("X-Request-Id")
		if c.keep && got != c.sent || !c.keep && !generated.MatchString(got) {
			t.Errorf("sent %q, answered %q", c.sent, got)
		}
		if !strings.Contains(e.logs.String(), `"request_id":"`+got+`"`) {
			t.Errorf("request id %q not in the logs", got)
		}
	}
}

// TestRequestLog checks the one line logged per request.
func TestRequestLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("POST", "/v1/events", e.ingest, event(nil), "X-Request-Id", "req-log-1").wantStatus(t, 201)
	e.do("GET", "/v1/events?limit=0", e.read, "", "X-Request-Id", "req-log-2").wantStatus(t, 400)

	lines := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		id, _ := m["request_id"].(string)
		if _, dup := lines[id]; dup {
			t.Errorf("two log lines for request %s", id)
		}
		lines[id] = m
	}
	ok := lines["req-log-1"]
	if ok["msg"] != "request" || ok["method"] != "POST" || ok["route"] != "/v1/events" || ok["status"] != 201.0 ||
		ok["account"] != "acme" || ok["level"] != "INFO" || ok["duration"] == nil {
		t.Errorf("log line %v", ok)
	}
	bad := lines["req-log-2"]
	if bad["status"] != 400.0 || !strings.Contains(bad["problem"].(string), "?limit") {
		t.Errorf("log line %v", bad)
	}
	if strings.Contains(e.logs.String(), e.ingest) || strings.Contains(e.logs.String(), e.read) {
		t.Error("a key is in the logs")
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("POST", "/v1/events", e.ingest, event(nil)).wantStatus(t, 201)
	e.do("POST", "/v1/events", e.ingest, event(nil)).wantStatus(t, 201)
	e.do("POST", "/v1/events/batch", e.ingest, batch(event(nil), event(nil), `{}`)).wantStatus(t, 200)
	e.do("GET", "/v1/events/evt-0001", e.read, "").wantStatus(t, 200)
	e.do("GET", "/v1/events/nope", e.read, "").wantStatus(t, 404)
	e.do("GET", "/no/such/route/1", "", "").wantStatus(t, 404)
	e.do("BREW", "/no/such/route/2", "", "").wantStatus(t, 404)

	counter := func(route, method, code string) float64 {
		return value(t, e.server.metrics.requests.WithLabelValues(route, method, code))
	}
	for _, c := range []struct {
		route, method, code string
		want                float64
	}{
		{"/v1/events", "POST", "201", 2},
		{"/v1/events/batch", "POST", "200", 1},
		{"/v1/events/{id}", "GET", "200", 1},
		{"/v1/events/{id}", "GET", "404", 1},
		{"unmatched", "GET", "404", 1},
		{"unmatched", "OTHER", "404", 1},
	} {
		if got := counter(c.route, c.method, c.code); got != c.want {
			t.Errorf("requests{%s %s %s} = %v, want %v", c.route, c.method, c.code, got, c.want)
		}
	}
	if got := value(t, e.server.metrics.eventsStored); got != 4 {
		t.Errorf("events stored %v, want 4", got)
	}

	// They are on the registry given, and /metrics serves them.
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, name := range []string{"herald_http_requests_total", "herald_http_request_duration_seconds", "herald_events_stored_total"} {
		if !names[name] {
			t.Errorf("%s is not on the given registry", name)
		}
	}
	body := string(e.do("GET", "/metrics", "", "").wantStatus(t, 200).body)
	for _, want := range []string{
		`herald_http_requests_total{code="201",method="POST",route="/v1/events"} 2`,
		`herald_http_request_duration_seconds_count{method="POST",route="/v1/events"} 2`,
		`herald_events_stored_total 4`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "/no/such/route") {
		t.Error("a raw path became a label")
	}
}

// value reads a counter.
func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestMetricsRegistries(t *testing.T) {
	t.Parallel()
	m := newMemStore()
	cfg := m.config()

	// Two servers may share a registry.
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	a, b := NewServer(cfg), NewServer(cfg)
	if a.metrics.requests != b.metrics.requests {
		t.Error("the second server did not reuse the registered metrics")
	}

	// Without a registry, a private one: never the global one.
	cfg.Registerer = nil
	NewServer(cfg)
	NewServer(cfg)
	mfs, _ := prometheus.DefaultGatherer.Gather()
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "herald_") {
			t.Errorf("%s is on the global registry", mf.GetName())
		}
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ok map[string]string
	e.do("GET", "/healthz", "", "").wantStatus(t, 200).json(t, &ok)
	if ok["status"] != "ok" {
		t.Errorf("health %v", ok)
	}
	e.store.fail("Ping", errors.New("dial tcp 10.0.0.5:5432: connection refused"))
	r := e.do("GET", "/healthz", "", "").wantStatus(t, 503)
	p := r.problem(t)
	if strings.Contains(string(r.body), "10.0.0.5") || !strings.Contains(p.Detail, "(ref ") {
		t.Errorf("unhealthy problem %s", r.body)
	}
	if !strings.Contains(e.logs.String(), "connection refused") {
		t.Error("the log lacks the ping error")
	}
}

func TestNewServerNeedsServices(t *testing.T) {
	t.Parallel()
	newServer := func(cfg Config) (panicked string) {
		defer func() {
			v := recover()
			panicked, _ = v.(string)
		}()
		NewServer(cfg)
		return ""
	}
	if v := newServer(Config{}); !strings.Contains(v, "Config.Accounts") || !strings.Contains(v, "Config.Profiles") {
		t.Errorf("empty config: recovered %q", v)
	}
	m := newMemStore()
	for name, unset := range map[string]func(*Config){
		"Accounts":      func(c *Config) { c.Accounts = nil },
		"Keys":          func(c *Config) { c.Keys = nil },
		"Events":        func(c *Config) { c.Events = nil },
		"EventTypes":    func(c *Config) { c.EventTypes = nil },
		"Settings":      func(c *Config) { c.Settings = nil },
		"Lifecycles":    func(c *Config) { c.Lifecycles = nil },
		"Profiles":      func(c *Config) { c.Profiles = nil },
		"Sessions":      func(c *Config) { c.Sessions = nil },
		"Visits":        func(c *Config) { c.Visits = nil },
		"Audit":         func(c *Config) { c.Audit = nil },
		"Subscriptions": func(c *Config) { c.Subscriptions = nil },
		"Deliveries":    func(c *Config) { c.Deliveries = nil },
	} {
		cfg := m.config()
		unset(&cfg)
		if v := newServer(cfg); v != "httpapi.NewServer: Config."+name+" required" {
			t.Errorf("without %s: recovered %q", name, v)
		}
	}
	if v := newServer(m.config()); v != "" {
		t.Errorf("full config: recovered %q", v)
	}
}

// TestSchemaCheckBites makes sure the response check can fail: answers
// that break the document are refused by the schemas it uses.
func TestSchemaCheckBites(t *testing.T) {
	t.Parallel()
	cases := []struct {
		schema string
		body   string
	}{
		{"IngestResult", `{"id":"a","receivedAt":"2026-01-02T15:04:05Z"}`},
		{"IngestResult", `{"id":"a","seq":1,"receivedAt":"yesterday"}`},
		{"Key", `{"id":"k","accountId":"a","prefix":"hk_","scopes":["read"],"createdAt":"2026-01-02T15:04:05Z","hash":"abc"}`},
		{"Key", `{"id":"k","accountId":"a","prefix":"hk_","scopes":["read"],"createdAt":"2026-01-02T15:04:05Z","secret":"hk_1"}`},
		{"Problem", `{"type":"https://herald.dev/problems/invalid","title":"t","status":400}`},
		{"Event", `{"id":"a","seq":1,"category":"c","type":"t","occurredAt":"2026-01-02T15:04:05Z","receivedAt":"2026-01-02T15:04:05Z","origin":"api","hash":"x"}`},
		{"BatchResult", `{"results":[{"index":0,"status":"stored"}],"created":1,"duplicates":0,"failed":0}`},
		{"BatchResult", `{"results":[],"created":0,"duplicates":0,"failed":0,"extra":1}`},
		{"EventPage", `{"events":[],"hasMore":false}`},
	}
	for _, c := range cases {
		var v any
		if err := json.Unmarshal([]byte(c.body), &v); err != nil {
			t.Fatal(err)
		}
		if err := schemaAt(t, "/components/schemas/"+c.schema).Validate(v); err == nil {
			t.Errorf("%s accepts %s", c.schema, c.body)
		}
	}
}

func TestKindOf(t *testing.T) {
	t.Parallel()
	want := map[string]int{
		herald.EINVALID: 400, herald.EUNAUTHORIZED: 401, herald.EFORBIDDEN: 403, herald.ENOTFOUND: 404,
		herald.ECONFLICT: 409, herald.ETOOLARGE: 413, herald.EINTERNAL: 500, "unheard_of": 500,
	}
	for code, status := range want {
		if got := kindOf(code).status; got != status {
			t.Errorf("%s maps to %d, want %d", code, got, status)
		}
	}
}
