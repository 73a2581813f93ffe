package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/sqlite"
)

// TestMain checks that no test leaves a goroutine behind: a stream's
// handler must end when its client leaves or its hub closes.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// notifyingAppender stores each request's events and then wakes the
// account's streams, as the server's write paths do in cmd/herald.
type notifyingAppender struct {
	events herald.EventService
	hub    *Hub
}

func (a notifyingAppender) Append(ctx context.Context, b *herald.AppendBatch) error {
	err := a.events.AppendEvents(ctx, []*herald.AppendBatch{b})
	if err == nil {
		a.hub.Notify(b.AccountID)
	}
	return err
}

// findCounter is the SQLite store with every FindEvents call noted.
type findCounter struct {
	*sqlite.Store
	mu    sync.Mutex
	finds []herald.EventFilter
}

func (c *findCounter) FindEvents(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
	c.mu.Lock()
	c.finds = append(c.finds, f)
	c.mu.Unlock()
	return c.Store.FindEvents(ctx, accountID, f)
}

// newStreamEnv is a server on SQLite whose ingest wakes its hub, and
// whose streams never poll: an event that arrives was woken for.
func newStreamEnv(t *testing.T, configure ...func(*Config)) (*env, *Hub) {
	t.Helper()
	hub := NewHub()
	e, _ := newSQLiteEnv(t, append([]func(*Config){func(cfg *Config) {
		cfg.Streams = hub
		cfg.StreamPoll = time.Hour
		cfg.Appender = notifyingAppender{events: cfg.Events, hub: hub}
	}}, configure...)...)
	return e, hub
}

// sseEvent is one event or comment as a client parses it.
type sseEvent struct {
	id, event, data string
	comment         string
}

// sseClient reads a stream in the background.
type sseClient struct {
	t       *testing.T
	status  int
	header  http.Header
	cancel  context.CancelFunc
	done    chan struct{}
	changed chan struct{}

	mu       sync.Mutex
	events   []sseEvent // events only
	comments []string
	ended    bool
}

// openStream connects to GET /v1/events/stream?query and returns once the
// answer's headers arrived, that is once the stream has chosen where it
// starts.
func openStream(t *testing.T, e *env, key, query string, header ...string) *sseClient {
	t.Helper()
	return openStreamAt(t, e.http, key, query, header...)
}

// openStreamAt is openStream on another server of the same handler.
func openStreamAt(t *testing.T, srv *httptest.Server, key, query string, header ...string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events/stream?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &sseClient{t: t, status: res.StatusCode, header: res.Header, cancel: cancel,
		done: make(chan struct{}), changed: make(chan struct{}, 1)}
	t.Cleanup(c.close)
	go c.read(res)
	return c
}

func (c *sseClient) read(res *http.Response) {
	defer close(c.done)
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		c.mu.Lock()
		switch {
		case line == "":
			if data != nil {
				cur.data = strings.Join(data, "\n")
				c.events = append(c.events, cur)
			}
			cur, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			c.comments = append(c.comments, strings.TrimSpace(line[1:]))
		default:
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "id":
				cur.id = value
			case "event":
				cur.event = value
			case "data":
				data = append(data, value)
			}
		}
		c.mu.Unlock()
		c.signal()
	}
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	c.signal()
}

func (c *sseClient) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// close hangs up and waits for the reader.
func (c *sseClient) close() {
	c.cancel()
	<-c.done
}

// wait waits until ok holds of what was read, failing the test with what
// was read after timeout.
func (c *sseClient) wait(timeout time.Duration, what string, ok func(events []sseEvent, comments []string, ended bool) bool) []sseEvent {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		events, comments, ended := slices.Clone(c.events), slices.Clone(c.comments), c.ended
		c.mu.Unlock()
		if ok(events, comments, ended) {
			return events
		}
		select {
		case <-c.changed:
		case <-deadline.C:
			c.t.Fatalf("%s: not within %s; read %d events %v, comments %q, ended %v", what, timeout, len(events), ids(events), comments, ended)
		}
	}
}

// waitEvents waits for at least n events.
func (c *sseClient) waitEvents(n int, timeout time.Duration) []sseEvent {
	c.t.Helper()
	return c.wait(timeout, fmt.Sprintf("%d events", n), func(ev []sseEvent, _ []string, _ bool) bool { return len(ev) >= n })
}

// waitEnd waits for the stream to end and returns all it sent.
func (c *sseClient) waitEnd(timeout time.Duration) []sseEvent {
	c.t.Helper()
	return c.wait(timeout, "the end of the stream", func(_ []sseEvent, _ []string, ended bool) bool { return ended })
}

// ids lists the event ids (from the data) of events, or their
// problems.
func ids(events []sseEvent) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		var v struct{ ID string }
		if err := json.Unmarshal([]byte(ev.data), &v); err != nil {
			out[i] = "bad data: " + ev.data
			continue
		}
		out[i] = v.ID
	}
	return out
}

// send stores one event with the key and returns its seq.
func send(t *testing.T, e *env, key, body string) int64 {
	t.Helper()
	var res ingestResult
	e.do("POST", "/v1/events", key, body).wantStatus(t, 201).json(t, &res)
	return res.Seq
}

// gadget is an event of an unregistered type, which is stored unchecked.
func gadget(id, category, typ, status string) string {
	return event(map[string]any{"id": id, "category": category, "type": typ, "eventStatus": status, "data": map[string]any{"n": 1}})
}

func TestStreamSendsNewEventsWhenWoken(t *testing.T) {
	t.Parallel()
	e, _ := newStreamEnv(t)
	send(t, e, e.ingest, gadget("before", "gadgets", "gadgetMade", "ok"))

	s := openStream(t, e, e.read, "")
	if s.status != 200 || s.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q; want 200 text/event-stream", s.status, s.header.Get("Content-Type"))
	}
	// The stream polls once an hour here: only the wake-up can bring the
	// event within the deadline.
	for i := range 3 {
		id := fmt.Sprintf("after-%d", i)
		start := time.Now()
		seq := send(t, e, e.ingest, gadget(id, "gadgets", "gadgetMade", "ok"))
		got := s.waitEvents(i+1, 10*time.Second)
		t.Logf("%s arrived %s after its request began", id, time.Since(start).Round(time.Microsecond))
		ev := got[i]
		if ev.id != strconv.FormatInt(seq, 10) || ev.event != "event" {
			t.Errorf("event %d: id %q event %q, want id %d event \"event\"", i, ev.id, ev.event, seq)
		}
		stored := e.do("GET", "/v1/events/"+id, e.read, "").wantStatus(t, 200)
		if ev.data+"\n" != string(stored.body) && ev.data != string(stored.body) {
			t.Errorf("event %d: data %s\nwant the stored body %s", i, ev.data, stored.body)
		}
	}
	if got := ids(s.waitEvents(3, time.Second)); slices.Contains(got, "before") {
		t.Errorf("a stream without afterSeq sent an event stored before it began: %v", got)
	}
}

func TestStreamResumesWithLastEventID(t *testing.T) {
	t.Parallel()
	e, hub := newStreamEnv(t)
	first := openStream(t, e, e.read, "origin=api")
	send(t, e, e.ingest, gadget("e1", "gadgets", "gadgetMade", "ok"))
	seq2 := send(t, e, e.ingest, gadget("e2", "gadgets", "gadgetMade", "ok"))
	got := first.waitEvents(2, 10*time.Second)
	if got[1].id != strconv.FormatInt(seq2, 10) {
		t.Fatalf("second event id %q, want %d", got[1].id, seq2)
	}
	first.close() // the connection drops

	var missed []string
	for i := 3; i <= 5; i++ {
		id := fmt.Sprintf("e%d", i)
		send(t, e, e.ingest, gadget(id, "gadgets", "gadgetMade", "ok"))
		missed = append(missed, id)
	}
	// The header wins over afterSeq (which would skip e3).
	again := openStream(t, e, e.read, "origin=api&afterSeq="+strconv.FormatInt(seq2+5, 10), "Last-Event-ID", got[1].id)
	again.waitEvents(3, 10*time.Second)
	hub.Close()
	if all := ids(again.waitEnd(10 * time.Second)); !slices.Equal(all, missed) {
		t.Errorf("resumed stream sent %v, want exactly the missed %v", all, missed)
	}
}

func TestStreamFilters(t *testing.T) {
	t.Parallel()
	e, hub := newStreamEnv(t)
	for _, ev := range []struct{ id, category, typ, status string }{
		{"g1", "gadgets", "gadgetMade", "ok"},
		{"g2", "gadgets", "gadgetSold", "failed"},
		{"w1", "widgets", "widgetMade", "ok"},
		{"w2", "widgets", "widgetSold", "pending"},
		{"t1", "transfers", "singleTransferMade", "failed"},
	} {
		send(t, e, e.ingest, gadget(ev.id, ev.category, ev.typ, ev.status))
	}
	hub.Close() // each stream sends what is stored, then ends

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"origin=api", []string{"g1", "g2", "w1", "w2", "t1"}},
		{"origin=api&category=widgets", []string{"w1", "w2"}},
		{"origin=api&type=gadgetSold", []string{"g2"}},
		{"origin=api&eventStatus=failed", []string{"g2", "t1"}},
		{"origin=api&types=*Made", []string{"g1", "w1", "t1"}},
		{"origin=api&types=widgets/*,single*", []string{"w1", "w2", "t1"}},
		{"origin=api&types=gadgets/*&types=transfers/*", []string{"g1", "g2", "t1"}},
		{"origin=api&categories=gadgets,transfers", []string{"g1", "g2", "t1"}},
		{"origin=api&categories=widgets", []string{"w1", "w2"}},
		{"origin=api&statuses=failed&statuses=pending", []string{"g2", "w2", "t1"}},
		{"origin=api&categories=gadgets,widgets&statuses=ok", []string{"g1", "w1"}},
		{"origin=api&type=gadgetSold&types=*Made", []string{}},
	} {
		t.Run(c.query, func(t *testing.T) {
			s := openStream(t, e, e.read, "afterSeq=0&"+c.query)
			if got := ids(s.waitEnd(10 * time.Second)); !slices.Equal(got, c.want) {
				t.Errorf("%s: sent %v, want %v", c.query, got, c.want)
			}
		})
	}
	t.Run("system events", func(t *testing.T) {
		// Creating the keys wrote "created" system events about them.
		s := openStream(t, e, e.read, "afterSeq=0&system_event_type=created")
		got := s.waitEnd(10 * time.Second)
		if len(got) == 0 {
			t.Fatal("no system event sent")
		}
		for _, ev := range got {
			var v struct{ Origin, Type string }
			json.Unmarshal([]byte(ev.data), &v)
			if v.Origin != herald.OriginSystem || v.Type != herald.VerbCreated {
				t.Errorf("sent %s", ev.data)
			}
		}
	})
}

func TestStreamAccountsAreIsolated(t *testing.T) {
	t.Parallel()
	e, _ := newStreamEnv(t)
	acme := openStream(t, e, e.read, "origin=api")
	other := openStream(t, e, e.other, "origin=api")
	// The same id in both accounts: two different events.
	send(t, e, e.ingest, gadget("same", "gadgets", "gadgetMade", "ok"))
	acme.waitEvents(1, 10*time.Second)
	send(t, e, e.other, gadget("same", "widgets", "widgetMade", "ok"))
	send(t, e, e.other, gadget("other-only", "widgets", "widgetMade", "ok"))

	got := other.waitEvents(2, 10*time.Second)
	for i, want := range []string{"widgets", "widgets"} {
		var v struct{ Category string }
		json.Unmarshal([]byte(got[i].data), &v)
		if v.Category != want {
			t.Errorf("account other's stream sent %s", got[i].data)
		}
	}
	if got := ids(acme.waitEvents(1, time.Second)); !slices.Equal(got, []string{"same"}) {
		t.Errorf("account acme's stream sent %v, want only its own event", got)
	}
}

func TestStreamEndsAtShutdownAndWhenTheClientLeaves(t *testing.T) {
	t.Parallel()
	e, hub := newStreamEnv(t)
	leaving := openStream(t, e, e.read, "")
	staying := openStream(t, e, e.read, "")
	waitStreams(t, hub, 2)

	leaving.close()
	waitStreams(t, hub, 1)

	hub.Close()
	staying.waitEnd(10 * time.Second)
	waitStreams(t, hub, 0)
}

// waitStreams waits until the hub has n streams.
func waitStreams(t *testing.T, hub *Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for hub.streams() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the hub has %d streams, want %d", hub.streams(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStreamKeepAlive(t *testing.T) {
	t.Parallel()
	e, _ := newStreamEnv(t, func(cfg *Config) { cfg.StreamKeepAlive = 10 * time.Millisecond })
	s := openStream(t, e, e.read, "")
	s.wait(10*time.Second, "two pings", func(_ []sseEvent, comments []string, _ bool) bool {
		return len(comments) >= 2 && comments[0] == "ping" && comments[1] == "ping"
	})
}

// TestStreamOutlivesReadTimeout: an http.Server's ReadTimeout, which
// cmd/herald sets, bounds reading the request, not the stream (net/http
// cancels a request's context when a read of its connection fails).
func TestStreamOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	e, _ := newStreamEnv(t, func(cfg *Config) { cfg.StreamKeepAlive = 20 * time.Millisecond })
	const readTimeout = 100 * time.Millisecond
	srv := httptest.NewUnstartedServer(e.server)
	srv.Config.ReadTimeout = readTimeout
	srv.Start()
	t.Cleanup(srv.Close)

	start := time.Now()
	s := openStreamAt(t, srv, e.read, "")
	// Pings for three times the timeout, and still an event after them.
	s.wait(10*time.Second, "pings past the read timeout", func(_ []sseEvent, _ []string, ended bool) bool {
		if ended {
			t.Fatalf("the stream ended after %s (read timeout %s)", time.Since(start).Round(time.Millisecond), readTimeout)
		}
		return time.Since(start) > 3*readTimeout
	})
	send(t, e, e.ingest, gadget("late", "gadgets", "gadgetMade", "ok"))
	if got := ids(s.waitEvents(1, 10*time.Second)); got[0] != "late" {
		t.Errorf("sent %v", got)
	}
}

// TestStreamSafetyPoll: with no hub that anyone notifies, a stream still
// finds new events, at its poll.
func TestStreamSafetyPoll(t *testing.T) {
	t.Parallel()
	e, _ := newSQLiteEnv(t, func(cfg *Config) { cfg.StreamPoll = 20 * time.Millisecond })
	s := openStream(t, e, e.read, "")
	send(t, e, e.ingest, gadget("polled", "gadgets", "gadgetMade", "ok"))
	if got := ids(s.waitEvents(1, 10*time.Second)); got[0] != "polled" {
		t.Errorf("sent %v", got)
	}
}

// TestStreamReadsPagesOfBodies: a backlog is read a thousand stored bodies
// at a time, none decoded, and sent whole and in order.
func TestStreamReadsPagesOfBodies(t *testing.T) {
	t.Parallel()
	var store *findCounter
	e, hub := newStreamEnv(t, func(cfg *Config) {
		store = &findCounter{Store: cfg.Events.(*sqlite.Store)}
		cfg.Events = store
	})
	const n = 2500
	var want []string
	for b := 0; b < n; b += herald.MaxBatchEvents {
		var items []string
		for i := b; i < min(b+herald.MaxBatchEvents, n); i++ {
			id := fmt.Sprintf("b%04d", i)
			items = append(items, gadget(id, "gadgets", "gadgetMade", "ok"))
			want = append(want, id)
		}
		e.do("POST", "/v1/events/batch", e.ingest, `{"events":[`+strings.Join(items, ",")+`]}`).wantStatus(t, 200)
	}
	hub.Close()
	store.mu.Lock()
	store.finds = nil
	store.mu.Unlock()

	s := openStream(t, e, e.read, "afterSeq=0&origin=api")
	got := s.waitEnd(5 * time.Second)
	if ids := ids(got); !slices.Equal(ids, want) {
		t.Fatalf("sent %d events, want the %d stored in order", len(ids), n)
	}
	for i := 1; i < len(got); i++ {
		a, _ := strconv.ParseInt(got[i-1].id, 10, 64)
		b, _ := strconv.ParseInt(got[i].id, 10, 64)
		if b <= a {
			t.Fatalf("id %d after %d", b, a)
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.finds) != 3 {
		t.Errorf("%d reads for %d events, want 3", len(store.finds), n)
	}
	for _, f := range store.finds {
		if f.Limit != 1000 || !f.BodiesOnly {
			t.Errorf("read with limit %d, bodies only %v; want 1000, true", f.Limit, f.BodiesOnly)
		}
	}
}

func TestStreamRefusesBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct {
		query, lastEventID string
		want               []string
	}{
		{"limit=10", "", []string{"?limit"}},
		{"next=abc", "", []string{"?next"}},
		{"category=a&categories=a", "", []string{"?categories"}},
		{"eventStatus=ok&statuses=ok", "", []string{"?statuses"}},
		{"types=&statuses=", "", []string{"?statuses", "?types"}},
		{"types=a/b/c&categories=a%20b", "", []string{"?categories/0", "?types/0"}},
		{"origin=api&system_event_type=created", "", []string{"?origin"}},
		{"origin=both&afterSeq=-1", "", []string{"?origin", "?afterSeq"}},
		{"type=a&type=b", "", []string{"?type"}},
		{"", "abc", nil},
		{"", "-1", nil},
	} {
		var header []string
		if c.lastEventID != "" {
			header = []string{"Last-Event-ID", c.lastEventID}
		}
		p := e.do("GET", "/v1/events/stream?"+c.query, e.read, "", header...).wantStatus(t, 400).problem(t)
		got := pointers(p)
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%q (Last-Event-ID %q): pointers %v, want %v; detail %s", c.query, c.lastEventID, got, want, p.Detail)
		}
	}
}

func TestHub(t *testing.T) {
	t.Parallel()
	h := NewHub()
	a, endA := h.Subscribe("a")
	a2, endA2 := h.Subscribe("a")
	b, endB := h.Subscribe("b")
	woken := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	h.Notify("a")
	h.Notify("a") // folds into the first
	if !woken(a) || !woken(a2) || woken(b) {
		t.Error("Notify(a) did not wake exactly a's streams")
	}
	if woken(a) {
		t.Error("two wake-ups while busy were not folded into one")
	}
	h.Refresh()
	if !woken(a) || !woken(a2) || !woken(b) {
		t.Error("Refresh did not wake every stream")
	}
	endA()
	h.Notify("a")
	if woken(a) || !woken(a2) {
		t.Error("an ended subscription was woken, or the other was not")
	}
	endA2()
	endB()
	if n := h.streams(); n != 0 {
		t.Errorf("%d streams after every one ended", n)
	}
	h.Close()
	h.Close()
	select {
	case <-h.Done():
	default:
		t.Error("Done not closed by Close")
	}
}

func TestAppendSSE(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ body, want string }{
		{`{"a":1}`, "id: 7\nevent: event\ndata: {\"a\":1}\n\n"},
		{"{\n \"a\": 1\r\n}", "id: 7\nevent: event\ndata: {\ndata:  \"a\": 1\ndata: }\n\n"},
		{"{\r\"a\":1}", "id: 7\nevent: event\ndata: {\ndata: \"a\":1}\n\n"},
	} {
		if got := string(appendSSE(nil, 7, []byte(c.body))); got != c.want {
			t.Errorf("appendSSE(%q) = %q, want %q", c.body, got, c.want)
		}
	}
}
