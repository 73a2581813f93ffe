package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald"
)

// Defaults of the live stream, GET /v1/events/stream.
const (
	// DefaultStreamKeepAlive is how often an idle stream sends a comment,
	// so that proxies and load balancers, which drop a connection that is
	// silent for a minute or so, keep it open.
	DefaultStreamKeepAlive = 15 * time.Second
	// DefaultStreamPoll is how often a stream reads the store without
	// being woken: a safety net for a wake-up that was lost (a NOTIFY sent
	// while the listener was reconnecting, a write path that tells no
	// hub), not the way new events normally arrive.
	DefaultStreamPoll = time.Second
	// streamPageSize is how many events a stream reads at a time: the
	// most a list page may hold, so that a stream keeps up with batched
	// ingest at one query and one flush per thousand events.
	streamPageSize = maxPageSize
	// streamWriteTimeout drops a client that takes no bytes for this long,
	// so that a dead connection does not hold its handler for as long as
	// TCP takes to notice.
	streamWriteTimeout = 30 * time.Second
)

// Hub wakes the live streams of an account when its events are committed,
// so that a stream sends a new event within milliseconds instead of at its
// next poll. The process's write paths tell it (Notify after a commit,
// Refresh when which accounts is not known), as they tell the engines that
// read the log; with PostgreSQL, so do the commits of other servers,
// heard through LISTEN/NOTIFY.
//
// A wake-up carries nothing: a woken stream reads the store from its last
// sent seq. Wake-ups that come while a stream is busy fold into one, so a
// burst of commits costs a stream one read, and Notify never blocks.
type Hub struct {
	mu     sync.Mutex
	subs   map[string]map[chan struct{}]struct{} // by account
	closed bool
	done   chan struct{}
}

// NewHub returns a hub with no streams.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[chan struct{}]struct{}{}, done: make(chan struct{})}
}

// Notify wakes the streams of an account.
func (h *Hub) Notify(accountID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs[accountID] {
		wake(c)
	}
}

// Refresh wakes every stream.
func (h *Hub) Refresh() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for c := range subs {
			wake(c)
		}
	}
}

// wake marks c woken; a mark already there stands for this one too.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Subscribe returns a channel that receives when the account's events may
// have changed, and the function that ends the subscription.
func (h *Hub) Subscribe(accountID string) (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[accountID] == nil {
		h.subs[accountID] = map[chan struct{}]struct{}{}
	}
	h.subs[accountID][c] = struct{}{}
	return c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[accountID], c)
		if len(h.subs[accountID]) == 0 {
			delete(h.subs, accountID)
		}
	}
}

// Close ends every stream, once it has sent what it read, and makes any
// stream that starts later end once it has sent what is stored. A server
// calls it when it shuts down (http.Server.RegisterOnShutdown):
// Shutdown waits for handlers to return, and a stream would never return
// on its own. Clients reconnect with Last-Event-ID and lose nothing.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// Done is closed by Close.
func (h *Hub) Done() <-chan struct{} { return h.done }

// streams counts the open subscriptions, for tests.
func (h *Hub) streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, subs := range h.subs {
		n += len(subs)
	}
	return n
}

// The list keys of the shared filter (herald.Filter) that the stream takes
// besides the filters of GET /v1/events.
const (
	paramCategories = "categories"
	paramTypes      = "types"
	paramStatuses   = "statuses"
)

// streamQueryParams are the query parameters of GET /v1/events/stream:
// those of GET /v1/events but the paging ones (a stream has no pages),
// and the shared filter's list keys and Lytics keys.
var streamQueryParams = append(
	slices.DeleteFunc(slices.Clone(eventQueryParams), func(p string) bool { return p == "limit" || p == "next" }),
	paramCategories, paramTypes, paramStatuses,
	paramSystemEventType, paramSystemEventMultipleTypes, paramSystemEventSources,
)

// streamRepeatable are the list keys: each value may be comma separated,
// and the parameter repeated, as the Lytics list key is.
var streamRepeatable = []string{paramCategories, paramTypes, paramStatuses, paramSystemEventMultipleTypes}

// streamQuery is the query of GET /v1/events/stream, parsed.
type streamQuery struct {
	// filter is what the store selects; its AfterSeq is where the stream
	// starts when from is set.
	filter herald.EventFilter
	// match, when set, is what the store cannot select (type patterns,
	// several categories or statuses): the stream reads decoded events and
	// sends those that match.
	match *herald.Filter
	// from says that the client chose where to start (afterSeq or
	// Last-Event-ID); otherwise the stream starts after the newest event.
	from bool
}

// parseStreamQuery reads the query of GET /v1/events/stream and the
// Last-Event-ID header, naming every bad parameter at once.
func parseStreamQuery(q url.Values, lastEventID string) (streamQuery, error) {
	var sq streamQuery
	qp := &queryParser{q: q}
	p, err := parseEventQuery(q)
	if err != nil {
		var e *herald.Error
		if !errors.As(err, &e) {
			return streamQuery{}, err
		}
		qp.errs = append(qp.errs, e.Fields...)
	}
	f := parseLyticsFilter(qp)
	qp.list(paramCategories, &f.Categories)
	qp.list(paramTypes, &f.Types)
	qp.list(paramStatuses, &f.Statuses)
	// One key and its list would each narrow what the store reads to a
	// different single value; asking for one of them keeps it simple.
	if q.Has("category") && q.Has(paramCategories) {
		qp.fail(paramCategories, "give either category or categories, not both")
	}
	if q.Has("eventStatus") && q.Has(paramStatuses) {
		qp.fail(paramStatuses, "give either eventStatus or statuses, not both")
	}
	f.Origin = p.filter.Origin
	if err := f.Validate(""); err != nil {
		// origin is checked by parseEventQuery already; the filter only
		// adds its rule against mixing it with the system keys.
		qp.errs = append(qp.errs, paramFieldErrors(err)...)
	}
	if err := qp.err(); err != nil {
		return streamQuery{}, err
	}
	if lastEventID != "" {
		seq, err := strconv.ParseInt(lastEventID, 10, 64)
		if err != nil || seq < 0 {
			return streamQuery{}, herald.Errorf(herald.EINVALID,
				"the Last-Event-ID header must be the id of an event this stream sent (a non-negative integer), not %q", lastEventID)
		}
		p.filter.AfterSeq = seq // the header wins over afterSeq
	}
	f.ApplyTo(&p.filter)
	sq.filter = p.filter
	sq.from = lastEventID != "" || q.Has("afterSeq")
	if len(f.Types) > 0 || len(f.Categories) > 1 || len(f.Statuses) > 1 {
		sq.match = &f
	}
	return sq, nil
}

// list reads a list parameter: its values, each comma separated.
func (p *queryParser) list(name string, to *[]string) {
	for _, v := range p.q[name] {
		if v == "" {
			p.fail(name, "must not be empty (leave the parameter out to match any value)")
			continue
		}
		for _, item := range strings.Split(v, ",") {
			*to = append(*to, strings.TrimSpace(item))
		}
	}
}

// streamEvents serves GET /v1/events/stream: the account's events that
// match the filters, as Server-Sent Events, from where the client says
// (afterSeq, or Last-Event-ID when it reconnects) or else from now on,
// for as long as the client stays.
//
// Each event is "id: <seq>", "event: event" and its stored body as data.
// The stream reads a page from the store, lets go of the store, and only
// then writes the page, in one flush: a slow client holds a goroutine and
// a page of memory, never a connection to the database. When it has sent
// everything it waits for a wake-up from the hub, for its safety poll, or
// for the keep-alive, which writes a comment.
//
// What can fail before the first byte (the filters, the store's first
// read) is answered as a problem. After that, a store error ends the
// stream, logged with a ref, and the client reconnects with Last-Event-ID.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	sq, err := parseStreamQuery(r.URL.Query(), r.Header.Get("Last-Event-ID"))
	if err != nil {
		return err
	}
	key := keyFrom(ctx)
	// Subscribe before the first read, so that a commit between that read
	// and the wait still wakes the stream.
	woken, unsubscribe := s.streams.Subscribe(key.AccountID)
	defer unsubscribe()
	rd := &streamReader{events: s.events, accountID: key.AccountID, filter: sq.filter, match: sq.match}
	if !sq.from {
		if rd.filter.AfterSeq, err = s.lastSeq(ctx, key.AccountID); err != nil {
			return fmt.Errorf("find where the stream starts: %w", err)
		}
	}
	start := rd.filter.AfterSeq
	page, more, err := rd.next(ctx)
	if err != nil {
		return err
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// nginx buffers responses unless told not to.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := &streamWriter{w: w, rc: http.NewResponseController(w)}
	// The stream opens with where it starts, as an id without data: a
	// client that loses the connection before the first event resumes
	// from there (Last-Event-ID), not from whatever is newest by then.
	if err := out.flush(append(strconv.AppendInt([]byte("id: "), start, 10), "\n\n"...)); err != nil {
		return nil // the client left
	}

	keepAlive := time.NewTicker(s.streamKeepAlive)
	defer keepAlive.Stop()
	poll := time.NewTicker(s.streamPoll)
	defer poll.Stop()
	for {
		if len(page) > 0 {
			if err := out.events(page); err != nil {
				return nil // the client left
			}
			keepAlive.Reset(s.streamKeepAlive)
		}
		if !more {
			select {
			case <-s.streams.Done():
				return nil
			default:
			}
		wait:
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-s.streams.Done():
					// Send what was committed up to now, then end.
				case <-woken:
				case <-poll.C:
				case <-keepAlive.C:
					if err := out.flush([]byte(": ping\n\n")); err != nil {
						return nil
					}
					continue wait
				}
				break
			}
		}
		page, more, err = rd.next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.internal(r, fmt.Errorf("stream: %w", err)) // logged with the request
			}
			return nil
		}
	}
}

// lastSeq returns the account's newest seq: from the store's LastSeq, or,
// for a store without it, by reading the log to its end.
func (s *Server) lastSeq(ctx context.Context, accountID string) (int64, error) {
	if ls, ok := s.events.(interface {
		LastSeq(ctx context.Context, accountID string) (int64, error)
	}); ok {
		return ls.LastSeq(ctx, accountID)
	}
	var seq int64
	for {
		events, err := s.events.FindEvents(ctx, accountID, herald.EventFilter{AfterSeq: seq, Limit: maxPageSize, BodiesOnly: true})
		if err != nil {
			return 0, fmt.Errorf("find events: %w", err)
		}
		if len(events) == 0 {
			return seq, nil
		}
		seq = events[len(events)-1].Seq
	}
}

// streamReader reads a stream's events from the store, a page at a time,
// from after the last event read.
type streamReader struct {
	events    herald.EventService
	accountID string
	filter    herald.EventFilter // AfterSeq moves on with each page
	match     *herald.Filter
}

// next reads the next page and returns its events that match, and whether
// more may follow at once (the page was full).
func (rd *streamReader) next(ctx context.Context) ([]*herald.Event, bool, error) {
	f := rd.filter
	f.Limit = streamPageSize
	// Stored bodies are sent as they are; only a filter the store cannot
	// apply needs them decoded.
	f.BodiesOnly = rd.match == nil
	events, err := rd.events.FindEvents(ctx, rd.accountID, f)
	if err != nil {
		return nil, false, fmt.Errorf("find events after seq %d: %w", f.AfterSeq, err)
	}
	if len(events) == 0 {
		return nil, false, nil
	}
	rd.filter.AfterSeq = events[len(events)-1].Seq
	full := len(events) == f.Limit
	if rd.match != nil {
		events = slices.DeleteFunc(events, func(e *herald.Event) bool { return !rd.match.Match(e) })
	}
	return events, full, nil
}

// streamWriter writes Server-Sent Events.
type streamWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
}

// events writes a page of events, in one write and one flush.
func (sw *streamWriter) events(page []*herald.Event) error {
	b := sw.buf[:0]
	for _, e := range page {
		body, err := eventBody(e)
		if err != nil {
			return err
		}
		b = appendSSE(b, e.Seq, body)
	}
	sw.buf = b
	return sw.flush(b)
}

// flush writes b and flushes it to the client, which has
// streamWriteTimeout to take it.
func (sw *streamWriter) flush(b []byte) error {
	// Not every ResponseWriter has deadlines (a recorder in a test): then
	// the client simply has no deadline.
	_ = sw.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if len(b) > 0 {
		if _, err := sw.w.Write(b); err != nil {
			return err
		}
	}
	return sw.rc.Flush()
}

// appendSSE appends one event: its seq as id, and its body as data. A
// body with line breaks (JSON may have them between tokens) is sent as one
// data line per line, which the client joins back with "\n".
func appendSSE(b []byte, seq int64, body []byte) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, "\nevent: event\n"...)
	for {
		i := bytes.IndexAny(body, "\r\n")
		if i < 0 {
			break
		}
		b = append(b, "data: "...)
		b = append(b, body[:i]...)
		b = append(b, '\n')
		if body[i] == '\r' && i+1 < len(body) && body[i+1] == '\n' {
			i++
		}
		body = body[i+1:]
	}
	b = append(b, "data: "...)
	b = append(b, body...)
	return append(b, "\n\n"...)
}
