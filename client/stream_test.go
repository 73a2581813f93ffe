package client_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

// lastSeq returns the newest seq of c's account.
func lastSeq(t *testing.T, c *client.Client) int64 {
	t.Helper()
	var last int64
	for e, err := range c.Events(context.Background(), client.EventQuery{Limit: 1000}) {
		if err != nil {
			t.Fatal(err)
		}
		last = e.Seq
	}
	return last
}

// TestStreamFilterAndLive: the stream sends the stored events after
// AfterSeq that match, in seq order, then the ones stored while it runs.
func TestStreamFilterAndLive(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	from := lastSeq(t, c)
	if _, err := c.SendBatch(ctx, []*herald.Event{
		{ID: "pay-1", Category: "payments", Type: "paymentSent"},
		{ID: "view-1", Category: "pages", Type: "pageViewed"},
		{ID: "pay-2", Category: "payments", Type: "paymentSent"},
	}); err != nil {
		t.Fatal(err)
	}

	var got []string
	var last int64
	live := make(chan error, 1)
	for e, err := range c.Stream(ctx, client.StreamQuery{Types: []string{"paymentSent", "refund*"}, AfterSeq: from}) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq <= last {
			t.Fatalf("seq %d after %d", e.Seq, last)
		}
		last = e.Seq
		got = append(got, e.ID)
		if len(got) == 2 {
			// Caught up: what is stored now comes live.
			go func() {
				_, err := c.SendBatch(ctx, []*herald.Event{
					{ID: "view-2", Category: "pages", Type: "pageViewed"},
					{ID: "refund-1", Category: "payments", Type: "refundSent"},
				})
				live <- err
			}()
		}
		if len(got) == 3 {
			break
		}
	}
	if err := <-live; err != nil {
		t.Fatal(err)
	}
	if want := []string{"pay-1", "pay-2", "refund-1"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// streamProxy relays the stream of a real server, and ends the first
// connection after its first event: a dropped connection.
type streamProxy struct {
	upstream  string
	transport *http.Transport
	mu        sync.Mutex
	lastIDs   []string // the Last-Event-ID of each connection
}

func newStreamProxy(t *testing.T, upstream string) (*streamProxy, *httptest.Server) {
	p := &streamProxy{upstream: upstream, transport: http.DefaultTransport.(*http.Transport).Clone()}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.transport.CloseIdleConnections()
	})
	return p, srv
}

func (p *streamProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.lastIDs = append(p.lastIDs, r.Header.Get("Last-Event-ID"))
	first := len(p.lastIDs) == 1
	p.mu.Unlock()
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), nil)
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
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	br := bufio.NewReader(resp.Body)
	inEvent := false
	for {
		line, err := br.ReadBytes('\n')
		if _, werr := w.Write(line); werr != nil || err != nil {
			return
		}
		_ = rc.Flush()
		switch {
		case bytes.HasPrefix(line, []byte("data:")):
			inEvent = true
		case string(line) == "\n" && inEvent && first:
			return // the connection drops after the first event
		}
	}
}

func (p *streamProxy) ids() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lastIDs)
}

// TestStreamResumes: after a dropped connection the stream reconnects
// with Last-Event-ID and goes on with exactly the events it missed.
func TestStreamResumes(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	direct := newClient(t, srv.URL, srv.Key)
	proxy, proxySrv := newStreamProxy(t, srv.URL)
	c := newClient(t, proxySrv.URL, srv.Key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	from := lastSeq(t, direct)
	var sent []*herald.Event
	for i := range 5 {
		sent = append(sent, &herald.Event{ID: fmt.Sprintf("r-%d", i), Category: "a", Type: "b"})
	}
	res, err := direct.SendBatch(ctx, sent)
	if err != nil {
		t.Fatal(err)
	}

	var got []string
	for e, err := range c.Stream(ctx, client.StreamQuery{AfterSeq: from}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.ID)
		if len(got) == len(sent) {
			break
		}
	}
	if want := []string{"r-0", "r-1", "r-2", "r-3", "r-4"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if ids := proxy.ids(); len(ids) != 2 || ids[0] != "" || ids[1] != fmt.Sprint(res.Items[0].Seq) {
		t.Errorf("Last-Event-ID of each connection %q, want none then %d", ids, res.Items[0].Seq)
	}
}

// TestStreamEndsWhenServerStops: a server that shuts down ends the
// stream; the client tries again, and when every connection ends at once,
// yields the error and stops.
func TestStreamEndsWhenServerStops(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key, client.WithRetries(2))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	from := lastSeq(t, c)
	if _, err := c.Send(ctx, &herald.Event{ID: "s-1", Category: "a", Type: "b"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	var last error
	for e, err := range c.Stream(ctx, client.StreamQuery{AfterSeq: from}) {
		if err != nil {
			last = err
			continue // the sequence ends after its error
		}
		got = append(got, e.ID)
		srv.Hub.Close() // the server shuts down
	}
	if !slices.Equal(got, []string{"s-1"}) || last == nil || ctx.Err() != nil {
		t.Errorf("got %v, error %v (context %v)", got, last, ctx.Err())
	}
}

// TestStreamStopsWithContext: the stream ends with the context's error.
func TestStreamStopsWithContext(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var errs []error
	for e, err := range c.Stream(ctx, client.StreamQuery{}) {
		if err == nil {
			t.Errorf("event %s", e.ID)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Errorf("errors %v", errs)
	}
}

// TestStreamFormat reads the corners of the Server-Sent Events format
// from a fake server: comments, data over several lines, events of other
// kinds, an id without data, an event cut off by the drop, the retry
// field, and the 204 that tells a client not to come back.
func TestStreamFormat(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var lastIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		if r.Header.Get("Accept") != "text/event-stream" || r.URL.Query().Get("categories") != "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch n {
		case 1:
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, ": ping\n\nretry: 5\n\n"+
				"id: 1\nevent: event\ndata: {\"id\":\"a\",\ndata: \"seq\":1,\"category\":\"c\",\"type\":\"t\",\"origin\":\"api\"}\n\n"+
				"id: 2\nevent: other\ndata: {}\n\n"+
				"id: 3\n\n"+
				"id: 4\ndata: {\"id\":\"cut\",\"seq\":4}\n") // no blank line: never dispatched
		case 2:
			w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
			fmt.Fprint(w, "id:5\ndata:{\"id\":\"b\",\"seq\":5,\"category\":\"c\",\"type\":\"t\",\"origin\":\"api\"}\n\n")
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, "key")
	var got []string
	for e, err := range c.Stream(context.Background(), client.StreamQuery{}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s@%d", e.ID, e.Seq))
	}
	if !slices.Equal(got, []string{"a@1", "b@5"}) {
		t.Errorf("events %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(lastIDs, []string{"", "3", "5"}) {
		t.Errorf("Last-Event-ID of each connection %q", lastIDs)
	}
}
