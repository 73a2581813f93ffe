package httpapi

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// Limits of GET /v1/events.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	maxFilterLength = 512 // as long as an envelope field may be
)

// eventQueryParams are the query parameters of GET /v1/events.
var eventQueryParams = []string{
	"category", "type", "eventStatus", "eventLifecycleId", "coreCustomerId", "agentId", "sessionId", "primaryId",
	"origin", "occurredAfter", "occurredBefore", "afterSeq", "limit", "next",
}

// paramPointer names a query parameter in a problem's errors. Query
// parameters are not in the body, so a JSON Pointer cannot name them; "?"
// followed by the name reads as what it is and cannot be mistaken for one.
func paramPointer(name string) string { return "?" + name }

// checkParams refuses query parameters the route does not accept, and any
// given more than once.
func checkParams(r *http.Request, accepted []string) error {
	q := r.URL.Query()
	if len(q) == 0 {
		return nil
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []herald.FieldError
	for _, name := range names {
		switch {
		case !slices.Contains(accepted, name) && len(accepted) == 0:
			errs = append(errs, herald.FieldError{Pointer: paramPointer(name), Detail: "unknown query parameter (this route takes none)"})
		case !slices.Contains(accepted, name):
			errs = append(errs, herald.FieldError{Pointer: paramPointer(name), Detail: "unknown query parameter (accepted: " + strings.Join(accepted, ", ") + ")"})
		case len(q[name]) > 1:
			errs = append(errs, herald.FieldError{Pointer: paramPointer(name), Detail: "may be given only once"})
		}
	}
	return fieldErrors(errs)
}

// boolParam reads an optional true/false query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, herald.FieldErrorf(paramPointer(name), "must be true or false, not %q", v)
	}
}

// eventPage is the query parameters of GET /v1/events, parsed.
type eventPage struct {
	filter herald.EventFilter
	limit  int
}

// parseEventQuery reads the query of GET /v1/events, naming every bad
// parameter at once.
func parseEventQuery(q url.Values) (eventPage, error) {
	p := eventPage{limit: defaultPageSize}
	var errs []herald.FieldError
	fail := func(name, format string, args ...any) {
		errs = append(errs, herald.FieldError{Pointer: paramPointer(name), Detail: fmt.Sprintf(format, args...)})
	}
	for _, f := range []struct {
		name string
		to   *string
	}{
		{"category", &p.filter.Category},
		{"type", &p.filter.Type},
		{"eventStatus", &p.filter.EventStatus},
		{"eventLifecycleId", &p.filter.EventLifecycleID},
		{"coreCustomerId", &p.filter.CoreCustomerID},
		{"agentId", &p.filter.AgentID},
		{"sessionId", &p.filter.SessionID},
		{"primaryId", &p.filter.PrimaryID},
	} {
		v, ok := q[f.name]
		switch {
		case !ok:
		case v[0] == "":
			fail(f.name, "must not be empty (leave the parameter out to match any value)")
		case len(v[0]) > maxFilterLength:
			fail(f.name, "must be at most %d bytes long", maxFilterLength)
		default:
			*f.to = v[0]
		}
	}
	if v, ok := q["origin"]; ok {
		if v[0] == herald.OriginAPI || v[0] == herald.OriginSystem {
			p.filter.Origin = v[0]
		} else {
			fail("origin", "must be %q or %q", herald.OriginAPI, herald.OriginSystem)
		}
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{"occurredAfter", &p.filter.OccurredAfter}, {"occurredBefore", &p.filter.OccurredBefore}} {
		v, ok := q[f.name]
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v[0])
		switch {
		case err != nil && strings.Contains(v[0], " "):
			fail(f.name, "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z (write + in an offset as %%2B)")
		case err != nil:
			fail(f.name, "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z")
		default:
			*f.to = t
		}
	}
	if a, b := p.filter.OccurredAfter, p.filter.OccurredBefore; !a.IsZero() && !b.IsZero() && !b.After(a) {
		fail("occurredBefore", "must be later than occurredAfter")
	}
	if v, ok := q["afterSeq"]; ok {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || n < 0 {
			fail("afterSeq", "must be a non-negative integer")
		} else {
			p.filter.AfterSeq = n
		}
	}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > maxPageSize {
			fail("limit", "must be an integer from 1 to %d", maxPageSize)
		} else {
			p.limit = n
		}
	}
	if v, ok := q["next"]; ok {
		seq, ok := decodeCursor(v[0])
		if ok {
			p.filter.AfterSeq = seq // the cursor wins over afterSeq
		} else {
			fail("next", "is not a cursor this API returned: pass the next value of the previous page unchanged")
		}
	}
	if err := fieldErrors(errs); err != nil {
		return eventPage{}, err
	}
	return p, nil
}

// A cursor is the position after the last event a page returned. It is
// opaque to clients so that what it holds may change; today it is the
// base64url form of that event's seq.
func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
}

func decodeCursor(c string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	seq, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || seq < 0 || encodeCursor(seq) != c {
		return 0, false
	}
	return seq, true
}

// findEvents answers one page of the account's events, ordered by seq. The
// page always carries next, the position after its last event (or the
// position it started from when it is empty), so a client can keep polling
// with it and will neither skip nor repeat an event.
func (s *Server) findEvents(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	p, err := parseEventQuery(r.URL.Query())
	if err != nil {
		return err
	}
	f := p.filter
	f.Limit = p.limit + 1 // one more tells whether there are more
	f.BodiesOnly = true   // written out as stored: no need to decode them
	events, err := s.events.FindEvents(r.Context(), key.AccountID, f)
	if err != nil {
		return fmt.Errorf("find events: %w", err)
	}
	hasMore := len(events) > p.limit
	if hasMore {
		events = events[:p.limit]
	}
	pos := p.filter.AfterSeq
	if len(events) > 0 {
		pos = events[len(events)-1].Seq
	}

	// The stored bodies are written as they are: no decoding, no
	// re-encoding, the same bytes the event was stored as.
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	for i, e := range events {
		if i > 0 {
			buf.WriteByte(',')
		}
		body, err := eventBody(e)
		if err != nil {
			return err
		}
		buf.Write(body)
	}
	buf.WriteString(`],"next":"`)
	buf.WriteString(encodeCursor(pos)) // base64url: nothing to escape
	buf.WriteString(`","hasMore":`)
	buf.WriteString(strconv.FormatBool(hasMore))
	buf.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
	return nil
}

// getEvent answers one event of the account, exactly as stored.
func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	id := r.PathValue("id")
	notFound := herald.Errorf(herald.ENOTFOUND, "no event %q in this account", id)
	if !herald.ValidID(id) {
		return notFound
	}
	e, err := s.events.FindEventByID(r.Context(), key.AccountID, id)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND:
		return notFound
	case err != nil:
		return fmt.Errorf("find event %s: %w", id, err)
	case e.AccountID != "" && e.AccountID != key.AccountID:
		// The store scopes by account; this only guards against a store
		// that does not.
		return notFound
	}
	body, err := eventBody(e)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
	return nil
}

// eventBody returns the stored JSON of e. Stores always set Body; should one
// not, the event is encoded the way it would have been stored.
func eventBody(e *herald.Event) ([]byte, error) {
	if len(e.Body) > 0 {
		return e.Body, nil
	}
	b, err := herald.MarshalEvent(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return b, nil
}
