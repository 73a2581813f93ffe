package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

func TestSendAssignsIDAndReadsBack(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()

	e := &herald.Event{Category: "pages", Type: "pageViewed", Data: json.RawMessage(`{"path": "/a?x=<b>&y=1"}`)}
	res, err := c.Send(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID == "" || res.ID != e.ID || res.Seq == 0 || res.ReceivedAt.IsZero() || res.Duplicate {
		t.Fatalf("result %+v for event id %q", res, e.ID)
	}
	got, err := c.Event(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	// data comes back as sent, less white space: not HTML-escaped on the
	// way in.
	if got.Seq != res.Seq || got.Origin != herald.OriginAPI || string(got.Data) != `{"path":"/a?x=<b>&y=1"}` {
		t.Errorf("read back %+v, data %s", got, got.Data)
	}
	if !json.Valid(got.Body) || !strings.Contains(string(got.Body), `"id":"`+e.ID+`"`) {
		t.Errorf("Body %s", got.Body)
	}
}

func TestErrorsCarryProblem(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()

	for _, tc := range []struct {
		name     string
		call     func() error
		status   int
		typ      string
		pointers []string
	}{
		{"invalid data", func() error {
			_, err := c.Send(ctx, &herald.Event{Category: "transactions", Type: "transaction", EventStatus: "settled",
				Data: json.RawMessage(`{"external_transaction_id":"tx-1","amount":"12,50"}`)})
			return err
		}, 400, "invalid", []string{"/data/amount", "/data/currency", "/eventStatus"}},
		{"missing fields", func() error {
			_, err := c.Send(ctx, &herald.Event{})
			return err
		}, 400, "invalid", []string{"/category", "/type"}},
		{"not found", func() error {
			_, err := c.Event(ctx, "nope")
			return err
		}, 404, "not-found", nil},
		{"bad query", func() error {
			for _, err := range c.Events(ctx, client.EventQuery{Origin: "elsewhere", Limit: 5000}) {
				return err
			}
			return nil
		}, 400, "invalid", []string{"?origin", "?limit"}},
		{"wrong key", func() error {
			_, err := newClient(t, srv.URL, "not-a-key").EventTypes(ctx)
			return err
		}, 401, "unauthorized", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T), want *client.Error", err, err)
			}
			var pointers []string
			for _, f := range e.Errors {
				pointers = append(pointers, f.Pointer)
			}
			if e.Status != tc.status || e.Type != "https://herald.dev/problems/"+tc.typ || e.Detail == "" || e.RequestID == "" || !slices.Equal(pointers, tc.pointers) {
				t.Errorf("got %d %s %q pointers %v (request %q), want %d %s %v", e.Status, e.Type, e.Detail, pointers, e.RequestID, tc.status, tc.typ, tc.pointers)
			}
			if !strings.HasPrefix(e.Error(), fmt.Sprintf("herald: %d ", tc.status)) {
				t.Errorf("Error() = %q", e.Error())
			}
		})
	}

	// A conflict: the same id with other content.
	if _, err := c.Send(ctx, &herald.Event{ID: "c-1", Category: "a", Type: "b"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Send(ctx, &herald.Event{ID: "c-1", Category: "a", Type: "c"})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 409 || len(e.Errors) != 1 || e.Errors[0].Pointer != "/id" {
		t.Errorf("conflict: %v", err)
	}
}

func TestSendBatchItems(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()

	if _, err := c.Send(ctx, &herald.Event{ID: "b-0", Category: "a", Type: "b"}); err != nil {
		t.Fatal(err)
	}
	events := []*herald.Event{
		{ID: "b-0", Category: "a", Type: "b"},     // duplicate of the one sent
		{Category: "a", Type: "b"},                // created, id given by the client
		{ID: "b-2", Type: "b"},                    // no category
		{ID: "b-0", Category: "a", Type: "other"}, // conflict
	}
	res, err := c.SendBatch(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 1 || res.Duplicates != 1 || res.Failed != 2 || len(res.Items) != 4 {
		t.Fatalf("result %+v", res)
	}
	want := []struct {
		status, pointer string
		errStatus       int
	}{{client.ItemDuplicate, "", 0}, {client.ItemCreated, "", 0}, {client.ItemFailed, "/events/2/category", 400}, {client.ItemFailed, "/events/3/id", 409}}
	for i, w := range want {
		it := res.Items[i]
		if it.Index != i || it.Status != w.status || it.ID != events[i].ID || events[i].ID == "" {
			t.Errorf("item %d: %+v (event id %q)", i, it, events[i].ID)
		}
		switch {
		case w.pointer == "" && it.Error != nil:
			t.Errorf("item %d: error %v", i, it.Error)
		case w.pointer != "" && (it.Error == nil || it.Error.Status != w.errStatus || len(it.Error.Errors) == 0 || it.Error.Errors[0].Pointer != w.pointer):
			t.Errorf("item %d: error %+v, want %d at %s", i, it.Error, w.errStatus, w.pointer)
		case w.status != client.ItemFailed && (it.Seq == 0 || it.ReceivedAt.IsZero()):
			t.Errorf("item %d: no seq or receivedAt: %+v", i, it)
		}
	}
}

// TestSendBatchSplits sends more events than a request may carry: they
// go in several requests, and the items keep their place in the slice.
func TestSendBatchSplits(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	cnt := newCounter()
	c := newClient(t, srv.URL, srv.Key, client.WithHTTPClient(&http.Client{Transport: cnt}))
	t.Cleanup(cnt.base.(*http.Transport).CloseIdleConnections)

	events := make([]*herald.Event, herald.MaxBatchEvents+5)
	for i := range events {
		events[i] = &herald.Event{ID: fmt.Sprintf("s-%d", i), Category: "a", Type: "b"}
	}
	events[herald.MaxBatchEvents+2].Type = "" // fails, in the second request
	res, err := c.SendBatch(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	if n := cnt.count("POST /v1/events/batch"); n != 2 {
		t.Errorf("%d requests", n)
	}
	if res.Created != len(events)-1 || res.Failed != 1 || len(res.Items) != len(events) {
		t.Fatalf("created %d failed %d items %d", res.Created, res.Failed, len(res.Items))
	}
	for i, it := range res.Items {
		if it.Index != i || it.ID != events[i].ID {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	bad := res.Items[herald.MaxBatchEvents+2]
	// The pointer is the event's place in its request.
	if bad.Status != client.ItemFailed || bad.Error == nil || bad.Error.Errors[0].Pointer != "/events/2/type" {
		t.Errorf("failed item %+v", bad)
	}
}

// TestEventsPages pages through GET /v1/events: one request per page, the
// events in seq order, and no more requests once the loop stops.
func TestEventsPages(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	cnt := newCounter()
	c := newClient(t, srv.URL, srv.Key, client.WithHTTPClient(&http.Client{Transport: cnt}))
	t.Cleanup(cnt.base.(*http.Transport).CloseIdleConnections)
	ctx := context.Background()

	var events []*herald.Event
	for i := range 25 {
		events = append(events, &herald.Event{ID: fmt.Sprintf("p-%02d", i), Category: "pages", Type: "pageViewed"})
	}
	events = append(events, &herald.Event{ID: "other", Category: "pages", Type: "pageLeft"})
	if _, err := c.SendBatch(ctx, events); err != nil {
		t.Fatal(err)
	}

	var ids []string
	var last int64
	for e, err := range c.Events(ctx, client.EventQuery{Type: "pageViewed", Limit: 10}) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq <= last {
			t.Fatalf("seq %d after %d", e.Seq, last)
		}
		last = e.Seq
		ids = append(ids, e.ID)
	}
	if len(ids) != 25 || ids[0] != "p-00" || ids[24] != "p-24" {
		t.Errorf("ids %v", ids)
	}
	if n := cnt.count("GET /v1/events"); n != 3 {
		t.Errorf("%d page requests for 25 events of 10 a page", n)
	}

	// Stopping early fetches no more pages.
	n := 0
	for _, err := range c.Events(ctx, client.EventQuery{Type: "pageViewed", Limit: 10}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 10 {
			break
		}
	}
	if n := cnt.count("GET /v1/events"); n != 4 {
		t.Errorf("%d page requests after a loop that stopped at the first page's end", n-3)
	}

	// EventPage and AfterSeq: the cursor goes on where the page ended.
	p, err := c.EventPage(ctx, client.EventQuery{Type: "pageViewed", Limit: 20}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 20 || !p.HasMore || p.Next == "" {
		t.Fatalf("first page: %d events, hasMore %v, next %q", len(p.Events), p.HasMore, p.Next)
	}
	p, err = c.EventPage(ctx, client.EventQuery{Type: "pageViewed", Limit: 20}, p.Next)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 5 || p.HasMore || p.Events[0].ID != "p-20" {
		t.Errorf("second page: %d events, hasMore %v", len(p.Events), p.HasMore)
	}
}

// TestAccountsApart: a key sees its own account's events only.
func TestAccountsApart(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ctx := context.Background()
	acme, other := newClient(t, srv.URL, srv.Key), newClient(t, srv.URL, srv.Other)
	if _, err := acme.Send(ctx, &herald.Event{ID: "x-1", Category: "a", Type: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Event(ctx, "x-1"); err == nil {
		t.Error("another account's event found")
	}
	if got := apiEvents(t, other); len(got) != 0 {
		t.Errorf("other account lists %d events", len(got))
	}
}

func TestAuditAndVerify(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()
	for i := range 3 {
		if _, _, err := c.CreateKey(ctx, fmt.Sprintf("k%d", i), []string{herald.ScopeRead}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for e, err := range c.Audit(ctx, url.Values{"subjectType": {"apikey"}, "verb": {"created"}, "limit": {"2"}}) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Origin != herald.OriginSystem || e.Category != "apikey" || e.Type != "created" || e.ChainHash == "" {
			t.Errorf("audit event %+v", e)
		}
		n++
	}
	if n != 4 { // the account's first key and the three made here
		t.Errorf("%d key creations in the audit log", n)
	}
	r, err := c.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified || r.Checked == 0 || r.Break != nil {
		t.Errorf("report %+v", r)
	}
}
