package httpapi

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/heraldhq/herald"
)

// maxLifecycleEvents bounds the events GET /v1/lifecycles/{id} shows: all
// of them, since no lifecycle may have more.
const maxLifecycleEvents = herald.MaxLifecycleEvents

// lifecycleQueryParams are the query parameters of GET /v1/lifecycles.
var lifecycleQueryParams = []string{
	"category", "type", "status", "terminal", "entity", "occurredAfter", "occurredBefore", "afterSeq", "limit", "next",
}

// lifecyclePage is one page of GET /v1/lifecycles.
type lifecyclePage struct {
	Lifecycles []*herald.Lifecycle `json:"lifecycles"`
	Next       string              `json:"next"`
	HasMore    bool                `json:"hasMore"`
}

// lifecycleView is one lifecycle with its events, each exactly as stored.
type lifecycleView struct {
	*herald.Lifecycle
	Events []json.RawMessage `json:"events"`
}

// parseLifecycleQuery reads the query of GET /v1/lifecycles, naming every
// bad parameter at once.
func parseLifecycleQuery(q url.Values) (herald.LifecycleFilter, int, error) {
	var f herald.LifecycleFilter
	var limit int
	p := &queryParser{q: q}
	p.text("category", &f.Category)
	p.text("type", &f.Type)
	p.text("status", &f.Status)
	p.optionalBool("terminal", &f.Terminal)
	p.text("entity", &f.EntityID)
	p.timeRange("occurredAfter", "occurredBefore", &f.OccurredAfter, &f.OccurredBefore)
	p.page(&f.AfterSeq, &limit)
	if err := p.err(); err != nil {
		return herald.LifecycleFilter{}, 0, err
	}
	return f, limit, nil
}

// findLifecycles answers one page of the account's lifecycles, in the
// order they began, paged like GET /v1/events.
func (s *Server) findLifecycles(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	f, limit, err := parseLifecycleQuery(r.URL.Query())
	if err != nil {
		return err
	}
	from := f.AfterSeq
	f.Limit = limit + 1 // one more tells whether there are more
	list, err := s.lifecycles.FindLifecycles(r.Context(), key.AccountID, f)
	if err != nil {
		return fmt.Errorf("find lifecycles: %w", err)
	}
	var out lifecyclePage
	out.Lifecycles, out.HasMore, out.Next = pageOf(list, limit, from,
		func(l *herald.Lifecycle) int64 { return l.FirstSeq }, lifecycleOf)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getLifecycle answers one lifecycle with its events, ordered as its
// history is: by occurredAt, then seq.
func (s *Server) getLifecycle(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	id := r.PathValue("id")
	notFound := herald.Errorf(herald.ENOTFOUND, "no lifecycle %q in this account", id)
	if id == "" || len(id) > maxFilterLength {
		return notFound // no event could have set it
	}
	l, err := s.lifecycles.FindLifecycle(r.Context(), key.AccountID, id)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND:
		return notFound
	case err != nil:
		return fmt.Errorf("find lifecycle %s: %w", id, err)
	}
	events, err := s.events.FindEvents(r.Context(), key.AccountID, herald.EventFilter{EventLifecycleID: id, Limit: maxLifecycleEvents})
	if err != nil {
		return fmt.Errorf("find events of lifecycle %s: %w", id, err)
	}
	slices.SortStableFunc(events, func(a, b *herald.Event) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	out := lifecycleView{Lifecycle: lifecycleOf(l), Events: make([]json.RawMessage, len(events))}
	for i, e := range events {
		body, err := eventBody(e)
		if err != nil {
			return err
		}
		out.Events[i] = body
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// lifecycleOf is a lifecycle as the API shows it: a history that is empty
// is [], never null.
func lifecycleOf(l *herald.Lifecycle) *herald.Lifecycle {
	c := *l
	if c.History == nil {
		c.History = []herald.LifecycleStep{}
	}
	c.Events = nil
	return &c
}
