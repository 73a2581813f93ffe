package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/heraldhq/herald"
)

// attemptQueryParams are the query parameters of GET
// /v1/subscriptions/{id}/attempts.
var attemptQueryParams = []string{"outcome", "eventId", "after", "before", "limit", "next"}

// messageQueryParams are the query parameters of GET
// /v1/subscriptions/{id}/messages.
var messageQueryParams = []string{"state", "eventId", "after", "before", "limit", "next"}

// Bounds of the stats and of a manual retry.
const (
	// defaultStatsWindow is how far back GET …/stats looks by default.
	defaultStatsWindow = 24 * time.Hour
	minStatsWindow     = time.Minute
	maxStatsWindow     = 30 * 24 * time.Hour
	// maxStatsAttempts caps the attempts the stats read: the newest ones
	// of the window.
	maxStatsAttempts = 10000
	// maxStatsMessages caps the messages of each state the stats count.
	maxStatsMessages = 10000
	// maxRetryEventIDs bounds the event ids of one retry request.
	maxRetryEventIDs = 1000
)

// attemptPage is one page of GET /v1/subscriptions/{id}/attempts.
type attemptPage struct {
	Attempts []*herald.Attempt `json:"attempts"`
	Next     string            `json:"next"`
	HasMore  bool              `json:"hasMore"`
}

// messagePage is one page of GET /v1/subscriptions/{id}/messages.
type messagePage struct {
	Messages []*herald.Message `json:"messages"`
	Next     string            `json:"next"`
	HasMore  bool              `json:"hasMore"`
}

// unchanged is the view of a list item the store made for this request.
func unchanged[T any](x T) T { return x }

// findAttempts answers one page of a subscription's attempts, newest
// first. Its next is the id of the last attempt on it: the following page
// holds older ones.
func (s *Server) findAttempts(w http.ResponseWriter, r *http.Request) error {
	var f herald.AttemptFilter
	var limit int
	p := &queryParser{q: r.URL.Query()}
	p.oneOf("outcome", []string{herald.AttemptDelivered, herald.AttemptFailed, herald.AttemptFinal}, &f.Outcome)
	p.text("eventId", &f.EventID)
	p.timeRange("after", "before", &f.After, &f.Before)
	p.page(&f.BeforeID, &limit)
	if err := p.err(); err != nil {
		return err
	}
	sub, err := s.findSubscription(r)
	if err != nil {
		return err
	}
	from := f.BeforeID
	f.Limit = limit + 1 // one more tells whether there are more
	list, err := s.deliveries.FindAttempts(r.Context(), sub.AccountID, sub.ID, f)
	if err != nil {
		return fmt.Errorf("find attempts of subscription %s: %w", sub.ID, err)
	}
	items, hasMore, next := pageOf(list, limit, from, func(a *herald.Attempt) int64 { return a.ID }, unchanged)
	writeJSON(w, http.StatusOK, attemptPage{Attempts: items, Next: next, HasMore: hasMore})
	return nil
}

// findMessages answers one page of a subscription's messages (the events
// that did not get through at their first attempt and are retrying,
// waiting their turn, or dead), by seq.
func (s *Server) findMessages(w http.ResponseWriter, r *http.Request) error {
	var f herald.MessageFilter
	var limit int
	p := &queryParser{q: r.URL.Query()}
	p.oneOf("state", []string{herald.MessageDead, herald.MessageRetrying, herald.MessageWaiting}, &f.State)
	var eventID string
	p.text("eventId", &eventID)
	if eventID != "" {
		f.EventIDs = []string{eventID}
	}
	p.timeRange("after", "before", &f.After, &f.Before)
	p.page(&f.AfterSeq, &limit)
	if err := p.err(); err != nil {
		return err
	}
	sub, err := s.findSubscription(r)
	if err != nil {
		return err
	}
	from := f.AfterSeq
	f.Limit = limit + 1
	list, err := s.deliveries.FindMessages(r.Context(), sub.AccountID, sub.ID, f)
	if err != nil {
		return fmt.Errorf("find messages of subscription %s: %w", sub.ID, err)
	}
	items, hasMore, next := pageOf(list, limit, from, func(m *herald.Message) int64 { return m.Seq }, unchanged)
	writeJSON(w, http.StatusOK, messagePage{Messages: items, Next: next, HasMore: hasMore})
	return nil
}

// retryInput is the body of POST /v1/subscriptions/{id}/retry. Nothing
// set selects every dead message; eventIds and the time range narrow.
type retryInput struct {
	EventIDs []json.RawMessage `json:"eventIds"`
	After    *string           `json:"after"`
	Before   *string           `json:"before"`
}

type retryResult struct {
	Retried int `json:"retried"`
}

// readRetry reads the body of a retry into the filter of the dead
// messages it selects. An empty body is {}.
func readRetry(w http.ResponseWriter, r *http.Request) (herald.MessageFilter, error) {
	f := herald.MessageFilter{State: herald.MessageDead}
	var in retryInput
	if err := decodeOptionalJSON(w, r, &in); err != nil {
		return f, err
	}
	var errs []herald.FieldError
	if in.EventIDs != nil {
		switch {
		case len(in.EventIDs) == 0:
			errs = append(errs, herald.FieldError{Pointer: "/eventIds", Detail: "must list at least one event id (leave it out to retry every dead message)"})
		case len(in.EventIDs) > maxRetryEventIDs:
			errs = append(errs, herald.FieldError{Pointer: "/eventIds", Detail: fmt.Sprintf("may list at most %d event ids", maxRetryEventIDs)})
		}
		for i, raw := range in.EventIDs {
			var id string
			if json.Unmarshal(raw, &id) != nil || !herald.ValidID(id) {
				errs = append(errs, herald.FieldError{Pointer: fmt.Sprintf("/eventIds/%d", i), Detail: "must be an event id"})
				continue
			}
			f.EventIDs = append(f.EventIDs, id)
		}
	}
	for _, t := range []struct {
		name string
		v    *string
		to   *time.Time
	}{{"after", in.After, &f.After}, {"before", in.Before, &f.Before}} {
		if t.v == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, *t.v)
		if err != nil {
			errs = append(errs, herald.FieldError{Pointer: "/" + t.name, Detail: "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z"})
			continue
		}
		*t.to = at
	}
	if !f.After.IsZero() && !f.Before.IsZero() && !f.Before.After(f.After) {
		errs = append(errs, herald.FieldError{Pointer: "/before", Detail: "must be later than after"})
	}
	return f, fieldErrors(errs)
}

// retryMessages makes dead messages due again, with a fresh schedule: all
// of them, those of some events, or those made in a time range.
func (s *Server) retryMessages(w http.ResponseWriter, r *http.Request) error {
	f, err := readRetry(w, r)
	if err != nil {
		return err
	}
	sub, err := s.findSubscription(r)
	if err != nil {
		return err
	}
	n, err := s.deliveries.RetryMessages(r.Context(), sub.AccountID, sub.ID, f, s.now().UTC().Truncate(timePrecision))
	if err != nil {
		return subscriptionErr(err, sub.ID, "retry the messages of")
	}
	writeJSON(w, http.StatusOK, retryResult{Retried: n})
	return nil
}

// subscriptionStats is the answer of GET /v1/subscriptions/{id}/stats.
type subscriptionStats struct {
	SubscriptionID string     `json:"subscriptionId"`
	State          string     `json:"state"`
	FailingSince   *time.Time `json:"failingSince,omitempty"`
	// Cursor is the subscription's place in the log: every matching event
	// up to this seq was delivered, dead-lettered or is a message.
	Cursor int64 `json:"cursor"`

	// Since starts the window the attempt figures cover; it ends now.
	Since time.Time `json:"since"`
	// Attempts counts the attempts of the window, at most
	// maxStatsAttempts of them (the newest); AttemptsCapped says the cap
	// was reached.
	Attempts       int  `json:"attempts"`
	AttemptsCapped bool `json:"attemptsCapped"`
	Delivered      int  `json:"delivered"`
	Failed         int  `json:"failed"`
	Final          int  `json:"final"`
	// SuccessRate is Delivered / Attempts; absent without attempts.
	SuccessRate *float64 `json:"successRate,omitempty"`
	// The latencies are those of the attempts that got an HTTP answer;
	// absent without one.
	LatencyP50Micros *int64 `json:"latencyP50Micros,omitempty"`
	LatencyP99Micros *int64 `json:"latencyP99Micros,omitempty"`

	// PendingMessages are the retrying and waiting ones, DeadMessages the
	// dead ones, each counted up to maxStatsMessages (MessagesCapped).
	PendingMessages int `json:"pendingMessages"`
	// UnsentEvents are the matching events stored after the cursor, not
	// yet tried, counted up to maxStatsMessages (UnsentCapped); Backlog
	// is them and the pending messages: what is still to be delivered.
	UnsentEvents   int  `json:"unsentEvents"`
	UnsentCapped   bool `json:"unsentCapped"`
	Backlog        int  `json:"backlog"`
	DeadMessages   int  `json:"deadMessages"`
	MessagesCapped bool `json:"messagesCapped"`
	// OldestPending is when the oldest pending message was made.
	OldestPending *time.Time `json:"oldestPending,omitempty"`
}

// subscriptionStats answers how a subscription's deliveries go: its
// attempts over a recent window (?window=, default 24h) and the backlog
// of its messages.
func (s *Server) subscriptionStats(w http.ResponseWriter, r *http.Request) error {
	window := defaultStatsWindow
	if v, ok := r.URL.Query()["window"]; ok {
		d, err := time.ParseDuration(v[0])
		if err != nil || d < minStatsWindow || d > maxStatsWindow {
			return herald.FieldErrorf(paramPointer("window"), "must be a duration from 1m to %s, such as 24h", durationText(maxStatsWindow))
		}
		window = d
	}
	sub, err := s.findSubscription(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	st := subscriptionStats{
		SubscriptionID: sub.ID, State: sub.State, FailingSince: sub.FailingSince, Cursor: sub.Cursor,
		Since: s.now().UTC().Truncate(timePrecision).Add(-window),
	}
	attempts, err := s.deliveries.FindAttempts(ctx, sub.AccountID, sub.ID, herald.AttemptFilter{After: st.Since, Limit: maxStatsAttempts + 1})
	if err != nil {
		return fmt.Errorf("find attempts of subscription %s: %w", sub.ID, err)
	}
	if len(attempts) > maxStatsAttempts {
		attempts, st.AttemptsCapped = attempts[:maxStatsAttempts], true
	}
	var latencies []int64
	for _, a := range attempts {
		switch a.Outcome {
		case herald.AttemptDelivered:
			st.Delivered++
		case herald.AttemptFailed:
			st.Failed++
		case herald.AttemptFinal:
			st.Final++
		}
		if a.StatusCode > 0 {
			latencies = append(latencies, a.LatencyMicros)
		}
	}
	st.Attempts = len(attempts)
	if st.Attempts > 0 {
		rate := float64(st.Delivered) / float64(st.Attempts)
		st.SuccessRate = &rate
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		p50, p99 := percentile(latencies, 50), percentile(latencies, 99)
		st.LatencyP50Micros, st.LatencyP99Micros = &p50, &p99
	}

	for _, state := range []string{herald.MessageRetrying, herald.MessageWaiting, herald.MessageDead} {
		msgs, err := s.deliveries.FindMessages(ctx, sub.AccountID, sub.ID, herald.MessageFilter{State: state, Limit: maxStatsMessages + 1})
		if err != nil {
			return fmt.Errorf("find %s messages of subscription %s: %w", state, sub.ID, err)
		}
		if len(msgs) > maxStatsMessages {
			msgs, st.MessagesCapped = msgs[:maxStatsMessages], true
		}
		if state == herald.MessageDead {
			st.DeadMessages = len(msgs)
			continue
		}
		st.PendingMessages += len(msgs)
		for _, m := range msgs {
			if st.OldestPending == nil || m.CreatedAt.Before(*st.OldestPending) {
				at := m.CreatedAt
				st.OldestPending = &at
			}
		}
	}
	if st.UnsentEvents, st.UnsentCapped, err = s.unsentEvents(ctx, sub); err != nil {
		return err
	}
	st.Backlog = st.PendingMessages + st.UnsentEvents
	writeJSON(w, http.StatusOK, st)
	return nil
}

// unsentEvents counts, up to maxStatsMessages, the events after sub's
// cursor that its filter selects.
func (s *Server) unsentEvents(ctx context.Context, sub *herald.Subscription) (int, bool, error) {
	n, after := 0, sub.Cursor
	for n <= maxStatsMessages {
		f := herald.EventFilter{AfterSeq: after, Limit: maxPageSize}
		sub.Filter.ApplyTo(&f)
		page, err := s.events.FindEvents(ctx, sub.AccountID, f)
		if err != nil {
			return 0, false, fmt.Errorf("count the backlog of subscription %s: %w", sub.ID, err)
		}
		for _, e := range page {
			if sub.Filter.Match(e) {
				n++
			}
		}
		if len(page) < f.Limit {
			break
		}
		after = page[len(page)-1].Seq
	}
	if n > maxStatsMessages {
		return maxStatsMessages, true, nil
	}
	return n, false, nil
}

// percentile returns the p-th percentile of sorted by the nearest-rank
// method: the smallest value that at least p % of them do not exceed.
func percentile(sorted []int64, p int) int64 {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 × n)
	return sorted[max(rank, 1)-1]
}
