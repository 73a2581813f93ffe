package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// streamed is one event a live stream sent, and when it arrived.
type streamed struct {
	Seq string
	ID  string
	At  time.Time
}

// liveStream is a client of GET /v1/events/stream on a real server.
type liveStream struct {
	events chan streamed
	ended  chan struct{} // closed when the server ends the stream
	cancel context.CancelFunc
}

// openLiveStream connects and returns once the answer's headers arrived,
// that is once the stream has chosen where it starts.
func (s *server) openLiveStream(query string) *liveStream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/events/stream?"+query, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		s.t.Fatalf("open the stream: %v", err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		s.t.Fatalf("open the stream: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ls := &liveStream{events: make(chan streamed, 1000), ended: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(ls.ended)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var seq string
		for sc.Scan() {
			name, value, _ := strings.Cut(sc.Text(), ": ")
			switch name {
			case "id":
				seq = value
			case "data":
				var e struct{ ID string }
				json.Unmarshal([]byte(value), &e)
				ls.events <- streamed{Seq: seq, ID: e.ID, At: time.Now()}
			}
		}
	}()
	s.t.Cleanup(func() {
		cancel()
		<-ls.ended
	})
	return ls
}

// next returns the next event, failing the test after timeout.
func (ls *liveStream) next(t *testing.T, timeout time.Duration) streamed {
	t.Helper()
	select {
	case e := <-ls.events:
		return e
	case <-ls.ended:
		t.Fatal("the stream ended")
	case <-time.After(timeout):
		t.Fatalf("no event within %s", timeout)
	}
	return streamed{}
}

// streamLatencies sends n events to `to` one at a time and checks that
// each arrives on ls, the stream of another or the same server, well
// within the stream's safety poll (1 s) of being committed (its answer):
// ten arrivals under wakeLimit by chance of the poll alone would happen
// once in ten thousand runs. It returns the times from the start of each
// ingest request to the arrival.
func streamLatencies(t *testing.T, ls *liveStream, to *server, n int) []time.Duration {
	t.Helper()
	const wakeLimit = 400 * time.Millisecond
	var took []time.Duration
	for i := range n {
		id := fmt.Sprintf("live-%d", i)
		start := time.Now()
		to.mustDo("POST", "/v1/events", []byte(fmt.Sprintf(`{"id":%q,"category":"gadgets","type":"gadgetMade"}`, id)), 201)
		committed := time.Now()
		got := ls.next(t, 10*time.Second)
		if got.ID != id {
			t.Fatalf("the stream sent %q, want %q", got.ID, id)
		}
		if d := got.At.Sub(committed); d > wakeLimit {
			t.Errorf("event %d arrived %s after its commit was answered, want under %s (a wake-up, not the poll)", i, d.Round(time.Millisecond), wakeLimit)
		}
		took = append(took, got.At.Sub(start))
	}
	return took
}

// TestStreamSQLite: a client of the stream gets each event committed after
// it connected within milliseconds, and SIGTERM ends the stream and lets
// the server exit at once rather than wait for the client to leave.
func TestStreamSQLite(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())
	s.mustDo("POST", "/v1/events", []byte(`{"id":"before","category":"gadgets","type":"gadgetMade"}`), 201)
	ls := s.openLiveStream("origin=api")
	took := streamLatencies(t, ls, s, 10)
	t.Logf("ingest to stream: %v", took)

	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ls.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end within 5 s of SIGTERM")
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("herald serve did not exit within 10 s of SIGTERM with a stream open: %s", s.logs.String())
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0: %s", code, s.logs.String())
	}
	t.Logf("SIGTERM to exit with a stream open: %s", time.Since(start).Round(time.Millisecond))
}

// TestStreamWakesAcrossNodesPostgres: an event stored through one server
// reaches a stream on another at once, through PostgreSQL's LISTEN/NOTIFY,
// not at the stream's next poll.
func TestStreamWakesAcrossNodesPostgres(t *testing.T) {
	t.Parallel()
	dbURL := postgresTestURL(t)
	key := randomKey()
	a := startServer(t, t.TempDir(), key, "--db", dbURL)
	b := startServer(t, t.TempDir(), key, "--db", dbURL)
	ls := a.openLiveStream("origin=api")
	took := streamLatencies(t, ls, b, 10)
	t.Logf("stored on one node, streamed by the other: %v", took)
}

// TestBenchStreamSQLite runs `herald bench stream` against a real server:
// every event sent arrives on the stream, and the report says so.
func TestBenchStreamSQLite(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())
	stdout, stderr, err := runBenchCmd(t, "stream", "--url", s.URL, "--key", s.Key,
		"--events", "500", "--batch", "50", "--concurrency", "2", "--wait", "10s", "--json", "--quiet")
	if err != nil {
		t.Fatalf("bench stream: %v\n%s%s", err, stdout, stderr)
	}
	var rep struct {
		Name         string
		Unit         string
		Ops          int64
		OpsPerSecond float64
		LatencyMs    struct{ P50, P99 float64 }
		Errors       struct{ Ops int64 }
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout)
	}
	if rep.Name != "stream" || rep.Unit != "events" || rep.Ops != 500 || rep.Errors.Ops != 0 || rep.OpsPerSecond <= 0 || rep.LatencyMs.P50 <= 0 {
		t.Errorf("report %s", stdout)
	}
}
