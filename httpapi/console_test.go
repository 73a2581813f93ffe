package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

// TestConsoleMounted: with Config.Console, GET and HEAD requests that no
// API route serves go to it; the API's own paths, and every other
// method, answer as they do without it.
func TestConsoleMounted(t *testing.T) {
	t.Parallel()
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("console " + r.URL.Path))
	})
	e := newEnv(t, func(c *Config) { c.Console = console })

	for _, path := range []string{"/", "/events", "/events/evt-1", "/assets/app.js", "/v2/events", "/v1x"} {
		r := e.do("GET", path, "", "").wantStatus(t, 200)
		if string(r.body) != "console "+path {
			t.Errorf("GET %s: %q, want the console's answer", path, r.body)
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("GET %s: no X-Request-Id", path)
		}
	}
	e.do("HEAD", "/", "", "").wantStatus(t, 200)

	// The API is unchanged: its routes, and a problem for what it lacks.
	e.do("GET", "/healthz", "", "").wantStatus(t, 200)
	e.do("GET", "/v1/events/evt-0001", e.read, "").wantStatus(t, 404)
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1", 404},
		{"GET", "/v1/nothing", 404},
		{"GET", "/healthz/more", 404},
		{"GET", "/metrics/more", 404},
		{"POST", "/", 404},
		{"DELETE", "/events", 404},
		{"PUT", "/v1/events/x", 405},
	} {
		r := e.do(c.method, c.path, e.admin, "").wantStatus(t, c.want)
		if strings.HasPrefix(string(r.body), "console") {
			t.Errorf("%s %s went to the console", c.method, c.path)
		}
	}
	if got := value(t, e.server.metrics.requests.WithLabelValues(consoleRoute, "GET", "200")); got != 6 {
		t.Errorf("requests{console GET 200} = %v, want 6", got)
	}
}

// TestConsoleAbsent: without Config.Console, / is a 404 problem.
func TestConsoleAbsent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("GET", "/", "", "").wantStatus(t, 404)
	e.do("GET", "/events", "", "").wantStatus(t, 404)
}
