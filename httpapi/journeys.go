package httpapi

import (
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

// findSessions answers one page of the account's sessions, in the order
// they began (by the seq of their login event), paged like GET /v1/events.
func (s *Server) findSessions(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	f, limit, err := parseJourneyQuery(r.URL.Query())
	if err != nil {
		return err
	}
	from := f.AfterSeq
	f.Limit = limit + 1 // one more tells whether there are more
	list, err := s.sessions.FindSessions(r.Context(), key.AccountID, f)
	if err != nil {
		return fmt.Errorf("find sessions: %w", err)
	}
	var out sessionPage
	out.Sessions, out.HasMore, out.Next = pageOf(list, limit, from,
		func(x *herald.Session) int64 { return x.StartSeq }, (*herald.Session).Clone)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getSession answers one session. Its events are those of GET
// /v1/events?sessionId=….
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	id := r.PathValue("id")
	notFound := herald.Errorf(herald.ENOTFOUND, "no session %q in this account", id)
	if id == "" || len(id) > maxFilterLength {
		return notFound // no event could have named it
	}
	x, err := s.sessions.FindSessionByID(r.Context(), key.AccountID, id)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND:
		return notFound
	case err != nil:
		return fmt.Errorf("find session %s: %w", id, err)
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}

// findVisits answers one page of the account's visits, in the order they
// began (by the seq of their first event), paged like GET /v1/events.
func (s *Server) findVisits(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	f, limit, err := parseJourneyQuery(r.URL.Query())
	if err != nil {
		return err
	}
	from := f.AfterSeq
	f.Limit = limit + 1 // one more tells whether there are more
	list, err := s.visits.FindVisits(r.Context(), key.AccountID, f)
	if err != nil {
		return fmt.Errorf("find visits: %w", err)
	}
	var out visitPage
	out.Visits, out.HasMore, out.Next = pageOf(list, limit, from,
		func(x *herald.Visit) int64 { return x.FirstSeq }, (*herald.Visit).Clone)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getVisit answers one visit.
func (s *Server) getVisit(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	id := r.PathValue("id")
	notFound := herald.Errorf(herald.ENOTFOUND, "no visit %q in this account", id)
	if id == "" || len(id) > maxFilterLength {
		return notFound
	}
	x, err := s.visits.FindVisitByID(r.Context(), key.AccountID, id)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND:
		return notFound
	case err != nil:
		return fmt.Errorf("find visit %s: %w", id, err)
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}
