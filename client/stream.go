package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhq/herald"
)

// maxStreamLine bounds one line of the stream: an event is at most
// herald.MaxEventBytes as sent, and its stored JSON adds the server's
// members and may escape more of what it holds.
const maxStreamLine = 4 * herald.MaxEventBytes

// StreamQuery selects the events of a stream: EventQuery's filters (its
// Limit and AfterSeq aside) and the filter language's lists.
type StreamQuery struct {
	EventQuery
	// Types, Statuses and Categories select events of any of these
	// (types may be patterns, as in a subscription's filter).
	Types      []string
	Statuses   []string
	Categories []string
	// AfterSeq starts the stream after this seq; 0 (with
	// EventQuery.AfterSeq 0) starts it with the events stored from now on.
	AfterSeq int64
}

// Stream follows the live stream of events (GET /v1/events/stream):
// the events q selects, in seq order, as they are stored, for as long as
// the loop goes on and ctx lasts. When the connection drops, Stream
// connects again with the seq of the last event it yielded
// (Last-Event-ID), so that no event is missed or repeated; it gives up
// after the client's retries fail in a row, yielding the error. It ends
// with ctx's error once ctx is done.
//
// A stream started from now on that drops before its first event
// resumes from the moment it reconnects: pass AfterSeq to be exact.
func (c *Client) Stream(ctx context.Context, q StreamQuery) iter.Seq2[*herald.Event, error] {
	return func(yield func(*herald.Event, error) bool) {
		s := &streamer{c: c, q: q}
		s.run(ctx, yield)
	}
}

// streamer is one Stream's state across its connections.
type streamer struct {
	c      *Client
	q      StreamQuery
	lastID string        // the last event id dispatched: the resume point
	retry  time.Duration // the server's retry: field, the least wait before reconnecting
}

func (s *streamer) run(ctx context.Context, yield func(*herald.Event, error) bool) {
	v := s.q.EventQuery.values()
	after := s.q.AfterSeq
	if after == 0 {
		after = s.q.EventQuery.AfterSeq
	}
	if after > 0 {
		v.Set("afterSeq", strconv.FormatInt(after, 10))
	}
	for _, l := range []struct {
		name   string
		values []string
	}{{"types", s.q.Types}, {"statuses", s.q.Statuses}, {"categories", s.q.Categories}} {
		for _, x := range l.values {
			v.Add(l.name, x)
		}
	}

	drops := 0 // connections in a row that dropped without a line
	for {
		req := &request{method: http.MethodGet, path: "/v1/events/stream", query: v, header: http.Header{}}
		req.header.Set("Accept", "text/event-stream")
		req.header.Set("Cache-Control", "no-cache")
		if s.lastID != "" {
			req.header.Set("Last-Event-ID", s.lastID)
		}
		resp, err := s.c.send(ctx, req)
		if err != nil {
			yield(nil, err)
			return
		}
		if resp.StatusCode == http.StatusNoContent {
			// The server asks the client not to come back (as
			// EventSource does).
			resp.Body.Close()
			return
		}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
			resp.Body.Close()
			yield(nil, fmt.Errorf("GET /v1/events/stream: the answer is %q, not text/event-stream", resp.Header.Get("Content-Type")))
			return
		}
		progress, stop, err := s.read(resp, yield)
		resp.Body.Close()
		switch {
		case stop:
			return
		case ctx.Err() != nil:
			yield(nil, ctx.Err())
			return
		case err != nil && errors.Is(err, bufio.ErrTooLong):
			yield(nil, fmt.Errorf("GET /v1/events/stream: a line is longer than %d bytes: %w", maxStreamLine, err))
			return
		}
		if progress {
			drops = 0
		} else {
			drops++
		}
		if drops > s.c.retries {
			if err == nil {
				err = errors.New("the server ended the stream")
			}
			yield(nil, fmt.Errorf("GET /v1/events/stream: %d connections in a row dropped: %w", drops, err))
			return
		}
		// Even after progress, a short wait: a server that drops every
		// connection after a ping must not be called in a busy loop.
		if err := sleep(ctx, max(s.c.backoff(drops), s.retry)); err != nil {
			yield(nil, err)
			return
		}
	}
}

// read dispatches the events of one connection (the Server-Sent Events
// format) until it ends. progress reports whether an event or a ping came; stop,
// whether the loop asked to stop or an event was unreadable (its error
// yielded).
func (s *streamer) read(resp *http.Response, yield func(*herald.Event, error) bool) (progress, stop bool, err error) {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxStreamLine)
	var (
		data    bytes.Buffer
		hasData bool
		idBuf   = s.lastID
		kind    string
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 { // dispatch
			s.lastID = idBuf
			// The id alone that opens a stream is not progress: a server
			// that ends every stream at once still sends it.
			progress = progress || hasData
			if hasData && (kind == "" || kind == "event") {
				e, err := decodeEvent(data.Bytes())
				if err != nil {
					yield(nil, fmt.Errorf("GET /v1/events/stream: event %s: %w", idBuf, err))
					return progress, true, nil
				}
				if !yield(e, nil) {
					return progress, true, nil
				}
			}
			data.Reset()
			hasData, kind = false, ""
			continue
		}
		if line[0] == ':' {
			progress = true
			continue // a comment: the server's keep-alive ping
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if found {
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				idBuf = string(value)
			}
		case "event":
			kind = string(value)
		case "retry":
			if ms, err := strconv.Atoi(string(value)); err == nil && ms >= 0 {
				s.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return progress, false, sc.Err()
}
