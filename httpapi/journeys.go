package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/heraldhq/herald"
)

// journeyQueryParams are the query parameters of GET /v1/sessions and
// GET /v1/visits.
var journeyQueryParams = []string{
	"entity", "state", "startedAfter", "startedBefore", "afterSeq", "limit", "next",
}

// sessionPage is one page of GET /v1/sessions.
type sessionPage struct {
	Sessions []*herald.Session `json:"sessions"`
	Next     string            `json:"next"`
	HasMore  bool              `json:"hasMore"`
}

// visitPage is one page of GET /v1/visits.
type visitPage struct {
	Visits  []*herald.Visit `json:"visits"`
	Next    string          `json:"next"`
	HasMore bool            `json:"hasMore"`
}

// parseJourneyQuery reads the query of GET /v1/sessions and /v1/visits,
// naming every bad parameter at once.
func parseJourneyQuery(q url.Values) (herald.JourneyFilter, int, error) {
	var f herald.JourneyFilter
	var limit int
	p := &queryParser{q: q}
	p.text("entity", &f.EntityID)
	if v, ok := q["state"]; ok {
		if v[0] == herald.JourneyOpen || v[0] == herald.JourneyClosed {
			f.State = v[0]
		} else {
			p.fail("state", "must be %q or %q", herald.JourneyOpen, herald.JourneyClosed)
		}
	}
	p.timeRange("startedAfter", "startedBefore", &f.StartedAfter, &f.StartedBefore)
	p.page(&f.AfterSeq, &limit)
	if err := p.err(); err != nil {
		return herald.JourneyFilter{}, 0, err
	}
	return f, limit, nil
}

// journeyKind is what the handlers of sessions and of visits differ by.
type journeyKind[T any] struct {
	noun  string        // "session" or "visit"
	seqOf func(T) int64 // the seq it began at, the paging cursor
	view  func(T) T     // the copy a page lists
	// page is the body of a page: sessionPage or visitPage.
	page func(items []T, hasMore bool, next string) any
}

var (
	sessionKind = journeyKind[*herald.Session]{
		noun:  "session",
		seqOf: func(x *herald.Session) int64 { return x.StartSeq },
		view:  (*herald.Session).Clone,
		page: func(items []*herald.Session, hasMore bool, next string) any {
			return sessionPage{Sessions: items, Next: next, HasMore: hasMore}
		},
	}
	visitKind = journeyKind[*herald.Visit]{
		noun:  "visit",
		seqOf: func(x *herald.Visit) int64 { return x.FirstSeq },
		view:  (*herald.Visit).Clone,
		page: func(items []*herald.Visit, hasMore bool, next string) any {
			return visitPage{Visits: items, Next: next, HasMore: hasMore}
		},
	}
)

// findPage answers one page of the account's sessions or visits, those
// find returns, in the order they began, paged like GET /v1/events.
func (k journeyKind[T]) findPage(w http.ResponseWriter, r *http.Request,
	find func(ctx context.Context, accountID string, f herald.JourneyFilter) ([]T, error)) error {
	key := keyFrom(r.Context())
	f, limit, err := parseJourneyQuery(r.URL.Query())
	if err != nil {
		return err
	}
	from := f.AfterSeq
	f.Limit = limit + 1 // one more tells whether there are more
	list, err := find(r.Context(), key.AccountID, f)
	if err != nil {
		return fmt.Errorf("find %ss: %w", k.noun, err)
	}
	items, hasMore, next := pageOf(list, limit, from, k.seqOf, k.view)
	writeJSON(w, http.StatusOK, k.page(items, hasMore, next))
	return nil
}

// getOne answers the session or visit of the path's id that findByID
// finds in the account.
func (k journeyKind[T]) getOne(w http.ResponseWriter, r *http.Request,
	findByID func(ctx context.Context, accountID, id string) (T, error)) error {
	key := keyFrom(r.Context())
	id := r.PathValue("id")
	notFound := herald.Errorf(herald.ENOTFOUND, "no %s %q in this account", k.noun, id)
	if id == "" || len(id) > maxFilterLength {
		return notFound // no event could have named it
	}
	x, err := findByID(r.Context(), key.AccountID, id)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND:
		return notFound
	case err != nil:
		return fmt.Errorf("find %s %s: %w", k.noun, id, err)
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}

// findSessions answers one page of the account's sessions, in the order
// they began (by the seq of their login event), paged like GET /v1/events.
func (s *Server) findSessions(w http.ResponseWriter, r *http.Request) error {
	return sessionKind.findPage(w, r, s.sessions.FindSessions)
}

// getSession answers one session. Its events are those of GET
// /v1/events?sessionId=….
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	return sessionKind.getOne(w, r, s.sessions.FindSessionByID)
}

// findVisits answers one page of the account's visits, in the order they
// began (by the seq of their first event), paged like GET /v1/events.
func (s *Server) findVisits(w http.ResponseWriter, r *http.Request) error {
	return visitKind.findPage(w, r, s.visits.FindVisits)
}

// getVisit answers one visit.
func (s *Server) getVisit(w http.ResponseWriter, r *http.Request) error {
	return visitKind.getOne(w, r, s.visits.FindVisitByID)
}
