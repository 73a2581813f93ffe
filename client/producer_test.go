package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

// results collects what a producer reports.
type results struct {
	mu    sync.Mutex
	items map[string]client.BatchItem
	errs  map[string]error
}

func newResults() *results {
	return &results{items: map[string]client.BatchItem{}, errs: map[string]error{}}
}

func (r *results) on(e *herald.Event, item client.BatchItem, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items[e.ID] = item
	if err != nil {
		r.errs[e.ID] = err
	}
}

func (r *results) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

// TestProducerBatchSize: full batches go at once, without waiting for the
// linger or a flush; the rest waits for Flush.
func TestProducerBatchSize(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	cnt := newCounter()
	t.Cleanup(cnt.base.(*http.Transport).CloseIdleConnections)
	c := newClient(t, srv.URL, srv.Key, client.WithHTTPClient(&http.Client{Transport: cnt}))
	ctx := context.Background()
	res := newResults()
	p := c.NewProducer(client.ProducerOptions{BatchSize: 10, Linger: time.Hour, Concurrency: 1, OnResult: res.on})
	defer p.Close(ctx)

	for i := range 25 {
		if err := p.Send(ctx, &herald.Event{Category: "ui", Type: "clicked", PrimaryID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two full batches stored", 5*time.Second, func() (bool, string) {
		n := res.count()
		return n == 20, fmt.Sprintf("%d results", n)
	})
	if n := cnt.count("POST /v1/events/batch"); n != 2 {
		t.Errorf("%d batch requests before the flush, want 2", n)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := res.count(); n != 25 {
		t.Errorf("%d results after Flush", n)
	}
	if n := cnt.count("POST /v1/events/batch"); n != 3 {
		t.Errorf("%d batch requests after the flush, want 3", n)
	}
	if got := apiEvents(t, c); len(got) != 25 {
		t.Errorf("%d events stored", len(got))
	}
	for id, item := range res.items {
		if item.Status != client.ItemCreated || item.ID != id || item.Seq == 0 {
			t.Errorf("result of %s: %+v", id, item)
		}
	}
}

// TestProducerLinger: a batch that does not fill goes once its first event
// has waited Linger, with no flush.
func TestProducerLinger(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	cnt := newCounter()
	t.Cleanup(cnt.base.(*http.Transport).CloseIdleConnections)
	c := newClient(t, srv.URL, srv.Key, client.WithHTTPClient(&http.Client{Transport: cnt}))
	ctx := context.Background()
	res := newResults()
	p := c.NewProducer(client.ProducerOptions{BatchSize: 100, Linger: 20 * time.Millisecond, OnResult: res.on})
	defer p.Close(ctx)

	start := time.Now()
	for range 3 {
		if err := p.Send(ctx, &herald.Event{Category: "ui", Type: "clicked"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the lingering batch stored", 5*time.Second, func() (bool, string) {
		n := res.count()
		return n == 3, fmt.Sprintf("%d results", n)
	})
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("sent after %s, before the linger", d)
	}
	if n := cnt.count("POST /v1/events/batch"); n != 1 {
		t.Errorf("%d batch requests, want 1", n)
	}
}

// TestProducerFailures: events the server refuses are reported with the
// field at fault and counted by Flush; after Close, Send fails.
func TestProducerFailures(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()
	res := newResults()
	p := c.NewProducer(client.ProducerOptions{BatchSize: 4, OnResult: res.on})

	for i := range 6 {
		e := &herald.Event{ID: fmt.Sprintf("f-%d", i), Category: "ui", Type: "clicked"}
		if i%3 == 1 {
			e.Type = "not a type!"
		}
		if err := p.Send(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	err := p.Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), "2 events not stored") {
		t.Errorf("Flush: %v", err)
	}
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("Flush error %v does not carry the problem", err)
	}
	for _, id := range []string{"f-1", "f-4"} {
		item := res.items[id]
		if item.Status != client.ItemFailed || item.Error == nil || !strings.HasSuffix(item.Error.Errors[0].Pointer, "/type") || res.errs[id] == nil {
			t.Errorf("%s: %+v, error %v", id, item, res.errs[id])
		}
	}
	if len(res.errs) != 2 || len(res.items) != 6 {
		t.Errorf("results %v, errors %v", res.items, res.errs)
	}
	if err := p.Flush(ctx); err != nil {
		t.Errorf("second Flush: %v (failures are reported once)", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, &herald.Event{Category: "ui", Type: "clicked"}); !errors.Is(err, client.ErrProducerClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestProducerCloseGivesUp: a Close whose context ends abandons the
// requests that wait for a retry, and reports their events.
func TestProducerCloseGivesUp(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t, status(503))
	c := newClient(t, srv.URL, "key", client.WithBackoff(time.Hour, time.Hour))
	res := newResults()
	p := c.NewProducer(client.ProducerOptions{BatchSize: 2, OnResult: res.on})
	for range 5 {
		if err := p.Send(context.Background(), &herald.Event{Category: "ui", Type: "clicked"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := p.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "5 events not stored") {
		t.Errorf("Close: %v", err)
	}
	if len(res.errs) != 5 {
		t.Errorf("%d failures reported, want 5", len(res.errs))
	}
}
