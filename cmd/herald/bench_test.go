package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// benchServer accepts event batches from the key "k" and counts them; the
// bench package's own tests cover the API in depth, this covers the flags.
func benchServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var events atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"title":"Unauthorized","status":401,"detail":"unknown API key"}`))
			return
		}
		var body struct{ Events []json.RawMessage }
		if r.URL.Path != "/v1/events/batch" || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		events.Add(int64(len(body.Events)))
		json.NewEncoder(w).Encode(map[string]int{"created": len(body.Events)})
	}))
	t.Cleanup(srv.Close)
	return srv, &events
}

func runBenchCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newBenchCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func TestBenchIngestJSON(t *testing.T) {
	srv, events := benchServer(t)
	t.Setenv("HERALD_KEY", "k") // the key from the environment
	out, _, err := runBenchCmd(t, "ingest", "--url", srv.URL, "--events", "250", "--batch", "50", "--concurrency", "2", "--json", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Name      string
		Unit      string
		Ops       int64
		Requests  int64
		LatencyMs struct{ P50, P95, P99, Max float64 }
		Params    map[string]any
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	if rep.Name != "ingest" || rep.Unit != "events" || rep.Ops != 250 || rep.Requests != 5 || rep.LatencyMs.P99 <= 0 {
		t.Errorf("report %+v, want ingest of 250 events in 5 requests with a latency", rep)
	}
	if events.Load() != 250 {
		t.Errorf("server got %d events, want 250", events.Load())
	}
	if rep.Params["batch"] != float64(50) || rep.Params["concurrency"] != float64(2) {
		t.Errorf("params %v do not record --batch and --concurrency", rep.Params)
	}
	if strings.Contains(out, `"k"`) {
		t.Errorf("the report shows the key: %s", out)
	}
}

func TestBenchIngestText(t *testing.T) {
	srv, _ := benchServer(t)
	t.Setenv("HERALD_KEY", "")
	out, errOut, err := runBenchCmd(t, "ingest", "--url", srv.URL, "--key", "k", "--events", "100", "--batch", "100")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"herald bench ingest", "events/s", "p99"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(errOut, "\r") {
		t.Errorf("progress to a buffer rewrote its line: %q", errOut)
	}
}

func TestBenchErrors(t *testing.T) {
	srv, _ := benchServer(t)
	t.Setenv("HERALD_KEY", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ingest", "--url", srv.URL}, "--key: no API key (pass --key or set HERALD_KEY)"},
		{[]string{"ingest", "--url", srv.URL, "--key", "k", "--batch", "5000"}, "--batch:"},
		{[]string{"ingest", "--url", srv.URL, "--key", "k", "--start", "yesterday"}, "--start:"},
		{[]string{"query", "--url", "localhost", "--key", "k"}, "--url:"},
		{[]string{"ingest", "--url", srv.URL, "--key", "wrong", "--quiet"}, "HTTP 401: unknown API key (check --key or HERALD_KEY)"},
	} {
		out, _, err := runBenchCmd(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one with %q", tc.args, err, tc.want)
		}
		// A run that started prints its partial report; a bad flag does not.
		if started := strings.Contains(tc.want, "HTTP"); started != strings.Contains(out, "stopped early") {
			t.Errorf("%v: stdout %q", tc.args, out)
		}
	}
}
