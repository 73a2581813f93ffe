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

// Limits of the list routes (GET /v1/events, /v1/lifecycles, /v1/profiles).
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	maxFilterLength = 512 // as long as an envelope field may be
)

// eventQueryParams are the query parameters of GET /v1/events.
var eventQueryParams = []string{
	"category", "type", "eventStatus", "eventLifecycleId", "coreCustomerId", "entity", "agentId", "sessionId", "primaryId",
	"origin", "occurredAfter", "occurredBefore", "afterSeq", "limit", "next",
}

// paramPointer names a query parameter in a problem's errors. Query
// parameters are not in the body, so a JSON Pointer cannot name them; "?"
// followed by the name reads as what it is and cannot be mistaken for one.
func paramPointer(name string) string { return "?" + name }

// checkParams refuses query parameters the route does not accept, and any
// but the repeatable ones given more than once.
func checkParams(r *http.Request, accepted, repeatable []string) error {
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
		case len(q[name]) > 1 && !slices.Contains(repeatable, name):
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

// queryParser reads the query of a list route, collecting every bad
// parameter so that one answer names them all. checkParams has refused
// repeated parameters already, so each is read once, but for those the
// route lets repeat.
type queryParser struct {
	q    url.Values
	errs []herald.FieldError
}

func (p *queryParser) fail(name, format string, args ...any) {
	p.errs = append(p.errs, herald.FieldError{Pointer: paramPointer(name), Detail: fmt.Sprintf(format, args...)})
}

// text reads a filter value into to.
func (p *queryParser) text(name string, to *string) {
	v, ok := p.q[name]
	switch {
	case !ok:
	case v[0] == "":
		p.fail(name, "must not be empty (leave the parameter out to match any value)")
	case len(v[0]) > maxFilterLength:
		p.fail(name, "must be at most %d bytes long", maxFilterLength)
	default:
		*to = v[0]
	}
}

// oneOf reads a parameter that takes one of values into to.
func (p *queryParser) oneOf(name string, values []string, to *string) {
	v, ok := p.q[name]
	switch {
	case !ok:
	case slices.Contains(values, v[0]):
		*to = v[0]
	default:
		p.fail(name, "must be one of %s", strings.Join(values, ", "))
	}
}

// optionalBool reads true or false into to, left nil when absent.
func (p *queryParser) optionalBool(name string, to **bool) {
	v, ok := p.q[name]
	if !ok {
		return
	}
	switch v[0] {
	case "true", "false":
		b := v[0] == "true"
		*to = &b
	default:
		p.fail(name, "must be true or false, not %q", v[0])
	}
}

// timeRange reads a half-open range [after, before) of two parameters.
func (p *queryParser) timeRange(afterName, beforeName string, after, before *time.Time) {
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{afterName, after}, {beforeName, before}} {
		v, ok := p.q[f.name]
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v[0])
		switch {
		case err != nil && strings.Contains(v[0], " "):
			p.fail(f.name, "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z (write + in an offset as %%2B)")
		case err != nil:
			p.fail(f.name, "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z")
		default:
			*f.to = t
		}
	}
	if !after.IsZero() && !before.IsZero() && !before.After(*after) {
		p.fail(beforeName, "must be later than %s", afterName)
	}
}

// page reads where a page starts (afterSeq, or the cursor next, which
// wins) and how long it is (limit).
func (p *queryParser) page(afterSeq *int64, limit *int) {
	if v, ok := p.q["afterSeq"]; ok {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || n < 0 {
			p.fail("afterSeq", "must be a non-negative integer")
		} else {
			*afterSeq = n
		}
	}
	p.limit(defaultPageSize, maxPageSize, limit)
	if v, ok := p.q["next"]; ok {
		seq, ok := decodeCursor(v[0])
		if ok {
			*afterSeq = seq // the cursor wins over afterSeq
		} else {
			p.fail("next", "is not a cursor this API returned: pass the next value of the previous page unchanged")
		}
	}
}

// limit reads how long a page is: def when limit is absent, at most
// most.
func (p *queryParser) limit(def, most int, to *int) {
	*to = def
	if v, ok := p.q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > most {
			p.fail("limit", "must be an integer from 1 to %d", most)
		} else {
			*to = n
		}
	}
}

func (p *queryParser) err() error { return fieldErrors(p.errs) }

// eventPage is the query parameters of GET /v1/events, parsed.
type eventPage struct {
	filter herald.EventFilter
	limit  int
}

// parseEventQuery reads the query of GET /v1/events, naming every bad
// parameter at once.
func parseEventQuery(q url.Values) (eventPage, error) {
	var p eventPage
	qp := &queryParser{q: q}
	qp.text("category", &p.filter.Category)
	qp.text("type", &p.filter.Type)
	qp.text("eventStatus", &p.filter.EventStatus)
	qp.text("eventLifecycleId", &p.filter.EventLifecycleID)
	qp.text("coreCustomerId", &p.filter.CoreCustomerID)
	qp.text("entity", &p.filter.EntityID)
	qp.text("agentId", &p.filter.AgentID)
	qp.text("sessionId", &p.filter.SessionID)
	qp.text("primaryId", &p.filter.PrimaryID)
	if v, ok := q["origin"]; ok {
		if v[0] == herald.OriginAPI || v[0] == herald.OriginSystem {
			p.filter.Origin = v[0]
		} else {
			qp.fail("origin", "must be %q or %q", herald.OriginAPI, herald.OriginSystem)
		}
	}
	qp.timeRange("occurredAfter", "occurredBefore", &p.filter.OccurredAfter, &p.filter.OccurredBefore)
	qp.page(&p.filter.AfterSeq, &p.limit)
	if err := qp.err(); err != nil {
		return eventPage{}, err
	}
	return p, nil
}

// A cursor is the position after the last item a page returned. It is
// opaque to clients so that what it holds may change; today it is the
// base64url form of that item's seq (for lifecycles and profiles, the seq
// of the event that began them).
// pageOf cuts list, found with a limit one greater than limit, to one page
// of a list route: the items, whether more follow, and the cursor after
// them (from, where the page began, when it is empty). seqOf is the
// item's place in the list's order.
func pageOf[T any](list []T, limit int, from int64, seqOf func(T) int64, view func(T) T) (items []T, hasMore bool, next string) {
	hasMore = len(list) > limit
	if hasMore {
		list = list[:limit]
	}
	if len(list) > 0 {
		from = seqOf(list[len(list)-1])
	}
	items = make([]T, len(list))
	for i, x := range list {
		items[i] = view(x)
	}
	return items, hasMore, encodeCursor(from)
}

// cutPage cuts list, found with a limit one greater than limit, to one
// page of a list that pages by ?before=: the items, and, when more
// follow, what to pass as before for them (the last item's id).
func cutPage[T any](list []T, limit int, idOf func(T) string) (items []T, next string, hasMore bool) {
	if len(list) > limit {
		list, next, hasMore = list[:limit], idOf(list[limit-1]), true
	}
	if list == nil {
		list = []T{}
	}
	return list, next, hasMore
}

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
	p, err := parseEventQuery(r.URL.Query())
	if err != nil {
		return err
	}
	return s.writeEventPage(w, r, p)
}

// writeEventPage finds the events of p and answers them as one page.
func (s *Server) writeEventPage(w http.ResponseWriter, r *http.Request, p eventPage) error {
	key := keyFrom(r.Context())
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
