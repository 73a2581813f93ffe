package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

// flakyProxy forwards requests to a real server and, for the first drops
// requests, drops the connection once the server has answered, so that
// the client never learns that its request succeeded.
type flakyProxy struct {
	upstream  string
	transport *http.Transport
	drops     atomic.Int32
	mu        sync.Mutex
	seen      []string // method and path of every request
}

func newFlakyProxy(t *testing.T, upstream string, drops int) *httptest.Server {
	p := &flakyProxy{upstream: upstream, transport: http.DefaultTransport.(*http.Transport).Clone()}
	p.drops.Store(int32(drops))
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.transport.CloseIdleConnections()
	})
	return srv
}

func (p *flakyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen = append(p.seen, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if p.drops.Add(-1) >= 0 {
		// The server has stored it; the client hears nothing.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// TestRetryStoresOnce: the first answer is lost after the server stored
// the event; the retry is a duplicate, and one event is stored.
func TestRetryStoresOnce(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	proxy := newFlakyProxy(t, srv.URL, 1)
	c := newClient(t, proxy.URL, srv.Key)
	direct := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()

	e := &herald.Event{Category: "payments", Type: "paymentSent"} // no id: the client gives one
	res, err := c.Send(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate || res.ID != e.ID {
		t.Errorf("result %+v: want the duplicate of the stored event %s", res, e.ID)
	}
	if got := apiEvents(t, direct); len(got) != 1 || got[e.ID] == nil || got[e.ID].Seq != res.Seq {
		t.Errorf("stored %v, want one event %s at seq %d", got, e.ID, res.Seq)
	}
}

func TestRetryBatchStoresOnce(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	proxy := newFlakyProxy(t, srv.URL, 2)
	c := newClient(t, proxy.URL, srv.Key)
	direct := newClient(t, srv.URL, srv.Key)
	events := make([]*herald.Event, 20)
	for i := range events {
		events[i] = &herald.Event{Category: "payments", Type: "paymentSent"}
	}
	res, err := c.SendBatch(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicates != len(events) || res.Created != 0 {
		t.Errorf("result %d created, %d duplicates: want all duplicates of the first attempt", res.Created, res.Duplicates)
	}
	if got := apiEvents(t, direct); len(got) != len(events) {
		t.Errorf("%d events stored, want %d", len(got), len(events))
	}
}

// TestRetryProducerStoresOnce: a producer's lost answers store nothing
// twice either.
func TestRetryProducerStoresOnce(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	proxy := newFlakyProxy(t, srv.URL, 3)
	c := newClient(t, proxy.URL, srv.Key)
	direct := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()
	p := c.NewProducer(client.ProducerOptions{BatchSize: 7, Concurrency: 3})
	for range 50 {
		if err := p.Send(ctx, &herald.Event{Category: "ui", Type: "clicked"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := apiEvents(t, direct); len(got) != 50 {
		t.Errorf("%d events stored, want 50", len(got))
	}
}

// fakeAPI answers with answers in turn (the last one for ever after) and
// counts the requests.
type fakeAPI struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter)
	times   []time.Time
}

func newFakeAPI(t *testing.T, answers ...func(w http.ResponseWriter)) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{answers: answers}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	n := len(f.times)
	f.times = append(f.times, time.Now())
	answer := f.answers[min(n, len(f.answers)-1)]
	f.mu.Unlock()
	answer(w)
}

func (f *fakeAPI) attempts() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.times...)
}

func status(code int, header ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"type":"https://herald.dev/problems/x","title":"%s","status":%d,"detail":"answer %d"}`, http.StatusText(code), code, code)
	}
}

func created(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintln(w, `{"id":"e-1","seq":7,"receivedAt":"2026-01-02T15:04:05Z"}`)
}

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	send := func(c *client.Client) error {
		_, err := c.Send(ctx, &herald.Event{ID: "e-1", Category: "a", Type: "b"})
		return err
	}
	for _, tc := range []struct {
		name     string
		answers  []func(http.ResponseWriter)
		call     func(c *client.Client) error
		attempts int
		status   int // of the error; 0: success
	}{
		{"400 is not retried", []func(http.ResponseWriter){status(400)}, send, 1, 400},
		{"409 is not retried", []func(http.ResponseWriter){status(409)}, send, 1, 409},
		{"500 then success", []func(http.ResponseWriter){status(500), status(502), created}, send, 3, 0},
		{"408 then success", []func(http.ResponseWriter){status(408), created}, send, 2, 0},
		{"5xx until the attempts run out", []func(http.ResponseWriter){status(500)}, send, 5, 500},
		{"a read is retried", []func(http.ResponseWriter){status(503)}, func(c *client.Client) error {
			_, err := c.EventTypes(ctx)
			return err
		}, 5, 503},
		{"a create is not retried on 500", []func(http.ResponseWriter){status(500)}, func(c *client.Client) error {
			_, _, err := c.CreateKey(ctx, "k", []string{"read"})
			return err
		}, 1, 500},
		{"a create is retried on 503", []func(http.ResponseWriter){status(503), status(429)}, func(c *client.Client) error {
			_, _, err := c.CreateSubscription(ctx, &herald.Subscription{URL: "https://example.com"})
			return err
		}, 5, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, srv := newFakeAPI(t, tc.answers...)
			c := newClient(t, srv.URL, "key")
			err := tc.call(c)
			if n := len(f.attempts()); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
			var e *client.Error
			switch {
			case tc.status == 0 && err != nil:
				t.Errorf("error %v", err)
			case tc.status != 0 && (!errors.As(err, &e) || e.Status != tc.status || e.Detail != fmt.Sprintf("answer %d", tc.status)):
				t.Errorf("error %v, want the %d answer", err, tc.status)
			}
		})
	}
}

// TestRetryAfter: a 429's Retry-After is waited, however short the
// client's own backoff.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, status(429, "Retry-After", "1"), created)
	c := newClient(t, srv.URL, "key")
	res, err := c.Send(context.Background(), &herald.Event{Category: "a", Type: "b"})
	if err != nil || res.Seq != 7 {
		t.Fatalf("result %+v, error %v", res, err)
	}
	at := f.attempts()
	if len(at) != 2 || at[1].Sub(at[0]) < time.Second {
		t.Errorf("attempts at %v: want the second a second after the first", at)
	}
}

// TestRetryHonoursContext: a context that ends during the wait ends the
// call.
func TestRetryHonoursContext(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t, status(503))
	c := newClient(t, srv.URL, "key", client.WithBackoff(time.Hour, time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.EventTypes(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("error %v after %s", err, time.Since(start))
	}
}

// TestRetryConnectionRefused: a server that is not there fails the call
// once the attempts run out, saying how many there were.
func TestRetryConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newClient(t, "http://"+addr, "key", client.WithRetries(2))
	_, err = c.Send(context.Background(), &herald.Event{Category: "a", Type: "b"})
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("error %v", err)
	}
}

func TestBadBaseURL(t *testing.T) {
	t.Parallel()
	c := client.New("localhost:8080", "key")
	_, err := c.EventTypes(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not an absolute http(s) URL") {
		t.Errorf("error %v", err)
	}
}

// TestHeaders: the key, the user agent, and a base URL with a path.
func TestHeaders(t *testing.T) {
	t.Parallel()
	var got http.Header
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, path = r.Header.Clone(), r.URL.EscapedPath()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"a/b","seq":1,"category":"c","type":"t","origin":"api"}`)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL+"/herald/", "secret", client.WithUserAgent("test/1"))
	e, err := c.Event(context.Background(), "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "a/b" || path != "/herald/v1/events/a%2Fb" || got.Get("Authorization") != "Bearer secret" || got.Get("User-Agent") != "test/1" {
		t.Errorf("path %s, headers %v, event %+v", path, got, e)
	}
}
