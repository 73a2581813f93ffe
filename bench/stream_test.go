package bench

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/httpapi"
	"github.com/heraldhq/herald/sqlite"
)

// wakingAppender stores each request's events and wakes the account's
// streams, as cmd/herald's write path does.
type wakingAppender struct {
	db  *sqlite.Store
	hub *httpapi.Hub
}

func (a wakingAppender) Append(ctx context.Context, b *herald.AppendBatch) error {
	err := a.db.AppendEvents(ctx, []*herald.AppendBatch{b})
	if err == nil {
		a.hub.Notify(b.AccountID)
	}
	return err
}

// newHerald runs the real API handler on a SQLite file, with an account
// whose admin key is testKey, and returns it with its streams' hub.
func newHerald(t *testing.T) (*httptest.Server, *httpapi.Hub) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := &herald.APIKey{
		ID: "key_bench", AccountID: "acme", Name: "bench", Prefix: herald.KeyPrefix(testKey), Hash: herald.HashKey(testKey),
		Scopes: []string{herald.ScopeAdmin}, CreatedAt: time.Now().UTC(),
	}
	if err := db.CreateAccount(ctx, &herald.Account{ID: "acme", Name: "acme", CreatedAt: key.CreatedAt}, key); err != nil {
		t.Fatal(err)
	}
	hub := httpapi.NewHub()
	api := httpapi.NewServer(httpapi.Config{
		Accounts: db, Keys: db, Events: db, EventTypes: db, Settings: db, Lifecycles: db, Profiles: db,
		Sessions: db, Visits: db, Audit: db, Subscriptions: db, Deliveries: db, Workflows: db, Work: db,
		Appender: wakingAppender{db: db, hub: hub},
		Streams:  hub,
		// Only a wake-up brings an event within the run's wait.
		StreamPoll: time.Hour,
	})
	srv := httptest.NewServer(api)
	// Streams end before the server closes, which waits for them.
	t.Cleanup(srv.Close)
	t.Cleanup(hub.Close)
	return srv, hub
}

func TestRunStream(t *testing.T) {
	t.Parallel()
	srv, _ := newHerald(t)
	rep, err := RunStream(t.Context(), StreamOptions{
		// A long timeout: a loaded machine (go test -race ./... with
		// other packages) can make a SQLite commit take seconds.
		Options: Options{URL: srv.URL, Key: testKey, Concurrency: 2, Timeout: 2 * time.Minute},
		Events:  400, Batch: 40, Wait: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Name != "stream" || rep.Unit != "events" || rep.Ops != 400 || rep.Duplicates != 0 || rep.Interrupted {
		t.Errorf("report %s %s: %d events, %d duplicates, interrupted %v; want stream events: 400, 0, false",
			rep.Name, rep.Unit, rep.Ops, rep.Duplicates, rep.Interrupted)
	}
	if rep.Errors != (Errors{}) {
		t.Errorf("errors %+v", rep.Errors)
	}
	if rep.Requests != 10 || rep.OpsPerSecond <= 0 || rep.Latency.P50 <= 0 || rep.Latency.P99 < rep.Latency.P50 || rep.Latency.Max > 2*time.Minute {
		t.Errorf("requests %d, %.0f events/s, latency %+v", rep.Requests, rep.OpsPerSecond, rep.Latency)
	}
	if len(rep.Breakdown) != 1 || rep.Breakdown[0].Name != "ingest request" || rep.Breakdown[0].Requests != 10 {
		t.Errorf("breakdown %+v, want the 10 ingest requests", rep.Breakdown)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "events/s") {
		t.Errorf("text report (%v):\n%s", err, text.String())
	}
}

func TestRunStreamPaced(t *testing.T) {
	t.Parallel()
	srv, _ := newHerald(t)
	rep, err := RunStream(t.Context(), StreamOptions{
		Options: Options{URL: srv.URL, Key: testKey, Concurrency: 2, Timeout: 2 * time.Minute},
		Events:  200, Batch: 10, Rate: 2000, Wait: time.Minute,
	})
	if err != nil || rep.Ops != 200 {
		t.Fatalf("%d events received, err %v", rep.Ops, err)
	}
	// 20 requests, one each 5 ms.
	if rep.Duration < 80*time.Millisecond {
		t.Errorf("200 events at 2,000/s took %s", rep.Duration)
	}
}

// TestRunStreamEndedByServer: a stream the server ends (it shuts down) is
// reported, not waited for.
func TestRunStreamEndedByServer(t *testing.T) {
	t.Parallel()
	srv, hub := newHerald(t)
	hub.Close()
	start := time.Now()
	rep, err := RunStream(t.Context(), StreamOptions{
		Options: Options{URL: srv.URL, Key: testKey, Concurrency: 2, Timeout: 2 * time.Minute},
		Events:  100, Batch: 50, Wait: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ops != 0 || rep.Errors.Ops != 100 || !strings.Contains(rep.Errors.First, "the stream ended early") {
		t.Errorf("%d events, errors %+v; want 0 and the stream's end", rep.Ops, rep.Errors)
	}
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("took %s: waited for a stream that had ended", d)
	}
}

func TestRunStreamRefusedKey(t *testing.T) {
	t.Parallel()
	srv, _ := newHerald(t)
	_, err := RunStream(t.Context(), StreamOptions{Options: Options{URL: srv.URL, Key: "hk_wrong_0123456789"}, Events: 10})
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "--key") {
		t.Fatalf("err %v, want a 401 that names --key", err)
	}
}

func TestRunStreamValidates(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		o    StreamOptions
		flag string
	}{
		{StreamOptions{Events: 0}, "--events"},
		{StreamOptions{Events: 1, Batch: 1001}, "--batch"},
		{StreamOptions{Events: 1, Rate: -1}, "--rate"},
		{StreamOptions{Events: 1, RunID: "a b"}, "--run-id"},
	} {
		c.o.Key = testKey
		if _, err := RunStream(t.Context(), c.o); err == nil || !strings.HasPrefix(err.Error(), c.flag) {
			t.Errorf("%+v: err %v, want one about %s", c.o, err, c.flag)
		}
	}
}

func TestReadStream(t *testing.T) {
	t.Parallel()
	a := newArrivals("run1", 3)
	long := "data: " + strings.Repeat("x", 300<<10) + "\n"
	stream := ": ping\n\n" +
		"id: 1\nevent: event\ndata: {\"id\":\"bench-run1-0\",\"seq\":1}\n\n" +
		"id: 2\nevent: event\ndata: {\"id\":\"bench-run2-1\",\"seq\":2}\n\n" + // another run's
		long + "\n" +
		"id: 3\nevent: event\ndata: {\"id\":\"bench-run1-2\",\"seq\":3}\n\n" +
		"id: 4\nevent: event\ndata: {\"id\":\"bench-run1-2\",\"seq\":3}\n\n" + // again
		"id: 5\nevent: event\ndata: {\"id\":\"bench-run1-7\",\"seq\":5}\n\n" + // beyond the run
		"id: 6\nevent: event\ndata: {\"id\":\"bench-run1-1x\",\"seq\":6}\n\n"
	if err := readStream(io.NopCloser(strings.NewReader(stream)), a); err != nil {
		t.Fatal(err)
	}
	if a.count.Load() != 2 || a.dups.Load() != 1 || a.received[0].Load() == 0 || a.received[1].Load() != 0 || a.received[2].Load() == 0 {
		t.Errorf("count %d, dups %d, received %d %d %d; want events 0 and 2 once, 2 again",
			a.count.Load(), a.dups.Load(), a.received[0].Load(), a.received[1].Load(), a.received[2].Load())
	}
}
