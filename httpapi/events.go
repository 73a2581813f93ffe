package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// timePrecision is what every store keeps of a time (see Event.Complete).
const timePrecision = time.Microsecond

// ingestResult answers POST /v1/events.
type ingestResult struct {
	ID         string    `json:"id"`
	Seq        int64     `json:"seq"`
	ReceivedAt time.Time `json:"receivedAt"`
	Duplicate  bool      `json:"duplicate,omitempty"`
	// SessionID is the event's session: the one Herald gave a login sent
	// without one, so that the client can send it with the events that
	// follow.
	SessionID string   `json:"sessionId,omitempty"`
	Flags     []string `json:"flags,omitempty"`
}

// ingestEvent stores one event and answers once it is committed: 201, or
// 200 when the same event was stored before.
func (s *Server) ingestEvent(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	body, err := readBody(w, r, herald.MaxEventBytes, "an event")
	if err != nil {
		return err
	}
	e, err := herald.ParseEvent(body)
	if err != nil {
		return err
	}
	if err := s.ready(r.Context(), key.AccountID, e, s.now()); err != nil {
		return fmt.Errorf("check event %s against its type: %w", e.ID, err)
	}

	b := &herald.AppendBatch{AccountID: key.AccountID, Events: []*herald.Event{e}, By: herald.ActorFrom(r.Context())}
	if err := s.append(r, b); err != nil {
		return err
	}
	res := b.Results[0]
	switch herald.ErrorCode(res.Err) {
	case "":
	case herald.ECONFLICT:
		return conflictError(e.ID, "")
	case herald.EINVALID:
		// The store refused the event where it meets what is stored: a
		// transition its lifecycle does not allow, say. The error names
		// the field.
		return res.Err
	default:
		return fmt.Errorf("append event %s: %w", e.ID, res.Err)
	}
	w.Header().Set("Location", "/v1/events/"+e.ID)
	out := ingestResult{
		ID: e.ID, Seq: res.Seq, ReceivedAt: res.ReceivedAt.UTC(), Duplicate: res.Duplicate,
		SessionID: res.SessionID, Flags: res.Flags,
	}
	if res.Duplicate {
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	s.metrics.eventsStored.Inc()
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// ready takes a parsed event as far as it can go before the commit queue:
// completed, checked against its type by the catalog, and encoded but for
// its seq (Event.PrepareBody), so that the one commit at a time of an
// account does as little as it can.
//
// A client that sends an event again with its id is retrying, and must get
// the answer it would have had: "duplicate". So an event that fails its
// type's rules but is stored already, with the same content (stored before
// the type changed), goes on to the store, which answers it so.
func (s *Server) ready(ctx context.Context, accountID string, e *herald.Event, now time.Time) error {
	clientID := e.ID != ""
	e.Complete(now, herald.OriginAPI, s.newID)
	e.AccountID = accountID
	if err := s.catalog.Prepare(ctx, accountID, e); err != nil {
		if !clientID || herald.ErrorCode(err) != herald.EINVALID {
			return err
		}
		stored, ferr := s.events.FindEventByID(ctx, accountID, e.ID)
		if ferr != nil || stored.Hash != e.Hash {
			return err
		}
	}
	return e.PrepareBody()
}

// append hands b to the Appender and checks that it kept its contract.
func (s *Server) append(r *http.Request, b *herald.AppendBatch) error {
	if err := s.appender.Append(r.Context(), b); err != nil {
		return fmt.Errorf("append %d events: %w", len(b.Events), err)
	}
	if len(b.Results) != len(b.Events) {
		return fmt.Errorf("append %d events: the store returned %d results", len(b.Events), len(b.Results))
	}
	return nil
}

// conflictError says that id is taken by another event; prefix is the
// pointer of the event within the request ("" for a single event).
func conflictError(id, prefix string) *herald.Error {
	return &herald.Error{
		Code:    herald.ECONFLICT,
		Message: fmt.Sprintf("event id %q is taken by an event with different content; send it again with the same content, or use a new id", id),
		Fields:  []herald.FieldError{{Pointer: prefix + "/id", Detail: fmt.Sprintf("%q is taken by different content", id)}},
	}
}

// Statuses of a batch item.
const (
	itemCreated   = "created"
	itemDuplicate = "duplicate"
	itemFailed    = "failed"
)

// batchItemResult is what became of one event of a batch.
type batchItemResult struct {
	Index      int        `json:"index"`
	Status     string     `json:"status"`
	ID         string     `json:"id,omitempty"`
	Seq        int64      `json:"seq,omitempty"`
	ReceivedAt *time.Time `json:"receivedAt,omitempty"`
	SessionID  string     `json:"sessionId,omitempty"`
	Flags      []string   `json:"flags,omitempty"`
	Problem    *Problem   `json:"problem,omitempty"`
}

// batchResult answers POST /v1/events/batch.
type batchResult struct {
	Results    []batchItemResult `json:"results"`
	Created    int               `json:"created"`
	Duplicates int               `json:"duplicates"`
	Failed     int               `json:"failed"`
}

// batchFailure answers an atomic batch that was not stored: a problem that
// still carries the result of every item.
type batchFailure struct {
	*Problem
	batchResult
}

// batchItem follows one event of a batch through the request.
type batchItem struct {
	event    *herald.Event // nil when the item did not parse
	clientID bool          // the client chose the id
	err      error         // why the item failed; nil if it did not
	// sameAs is the index of an earlier item with the same id and content,
	// conflictsWith one with the same id and other content: the item is
	// not sent to the store (see settleRepeats).
	sameAs        int
	conflictsWith int
	aborted       bool // valid, but not stored because the atomic batch failed
	result        herald.AppendResult
}

// ingestBatch stores many events in one request. Each event succeeds or
// fails on its own, unless ?atomic=true asks for all or none.
func (s *Server) ingestBatch(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	atomic, err := boolParam(r, "atomic")
	if err != nil {
		return err
	}
	body, err := readBody(w, r, herald.MaxBatchBytes, "a batch")
	if err != nil {
		return err
	}
	raws, err := splitBatch(r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}

	items := make([]batchItem, len(raws))
	now := s.now()
	firstByID := map[string]int{}
	for i, raw := range raws {
		it := &items[i]
		it.sameAs, it.conflictsWith = -1, -1
		e, err := herald.ParseEvent(raw)
		if err != nil {
			it.err = prefixError(err, itemPointer(i))
			continue
		}
		it.clientID = e.ID != ""
		if err := s.ready(r.Context(), key.AccountID, e, now); err != nil {
			if herald.ErrorCode(err) == herald.EINTERNAL {
				// The catalog could not be read: every other event
				// would fail the same way, so the request fails whole.
				return fmt.Errorf("check event %d (id %s) against its type: %w", i, e.ID, err)
			}
			it.event = e
			it.err = prefixError(err, itemPointer(i))
			continue
		}
		it.event = e
		if !it.clientID {
			continue
		}
		// Settle repeats within the batch here, the same way on every
		// store, rather than send one id twice in one transaction.
		j, seen := firstByID[e.ID]
		switch {
		case !seen:
			firstByID[e.ID] = i
		case items[j].event.Hash == e.Hash:
			it.sameAs = j
		case atomic:
			// The batch cannot be stored whole, whatever is stored already.
			it.err = batchConflictError(e.ID, i, j)
		default:
			// Which of the two conflicts depends on what is stored: see
			// settleRepeats.
			it.conflictsWith = j
		}
	}

	invalid := slices.ContainsFunc(items, func(it batchItem) bool { return it.err != nil })
	switch {
	case atomic && invalid:
		for i := range items {
			items[i].aborted = items[i].err == nil
		}
	default:
		b := &herald.AppendBatch{AccountID: key.AccountID, Atomic: atomic, By: herald.ActorFrom(r.Context())}
		var sent []int
		for i := range items {
			if items[i].err == nil && items[i].sameAs < 0 && items[i].conflictsWith < 0 {
				b.Events = append(b.Events, items[i].event)
				sent = append(sent, i)
			}
		}
		if len(b.Events) > 0 {
			if err := s.append(r, b); err != nil {
				return err
			}
		}
		failed := false
		for k, i := range sent {
			items[i].result = b.Results[k]
			failed = failed || b.Results[k].Err != nil
		}
		if atomic && failed {
			s.settleAtomicFailure(r, key.AccountID, items)
			for i := range items {
				items[i].aborted = items[i].err == nil && items[i].result.Err != nil
			}
		} else {
			for i := range items {
				if err := items[i].result.Err; err != nil {
					items[i].err = resultError(err, items[i].event.ID, i)
				}
			}
		}
	}
	s.settleRepeats(r, key.AccountID, items)
	s.answerBatch(w, r, items, atomic)
	return nil
}

// settleRepeats gives the outcome to events whose id an earlier event of
// the batch also has, which were not sent to the store. One with the same
// content shares the earlier one's outcome. One with different content
// conflicts with it, unless the earlier one conflicted with a stored event
// that this one matches: then this one is a duplicate of that.
func (s *Server) settleRepeats(r *http.Request, accountID string, items []batchItem) {
	for i := range items {
		it := &items[i]
		switch {
		case it.err != nil:
		case it.sameAs >= 0:
			first := &items[it.sameAs]
			it.result, it.aborted = first.result, first.aborted
			switch {
			case first.aborted:
			case first.err != nil:
				it.err = resultError(first.result.Err, it.event.ID, i)
			default:
				it.result.Duplicate = true
			}
		case it.conflictsWith >= 0:
			first := &items[it.conflictsWith]
			if herald.ErrorCode(first.result.Err) == herald.ECONFLICT {
				stored, err := s.events.FindEventByID(r.Context(), accountID, it.event.ID)
				if err == nil && stored.Hash == it.event.Hash {
					// Answered as the store answers a duplicate: with
					// the original's seq, receivedAt and session.
					it.result = herald.AppendResult{
						Seq: stored.Seq, ReceivedAt: stored.ReceivedAt, Duplicate: true, SessionID: stored.SessionID,
					}
					continue
				}
			}
			it.err = batchConflictError(it.event.ID, i, it.conflictsWith)
		}
	}
}

// batchConflictError says that event i of a batch has the id of event j
// with different content.
func batchConflictError(id string, i, j int) *herald.Error {
	e := conflictError(id, itemPointer(i))
	e.Message = fmt.Sprintf("event id %q is also used by event %d of this batch, with different content", id, j)
	return e
}

// resultError is the error of item i whose store result failed with err.
func resultError(err error, id string, i int) error {
	if herald.ErrorCode(err) == herald.ECONFLICT {
		return conflictError(id, itemPointer(i))
	}
	return prefixError(err, itemPointer(i))
}

// settleAtomicFailure finds which items made an atomic batch fail. The
// store marks every item of a failed atomic batch with an error, ECONFLICT
// both for an id taken by different content and for an item that was only
// carried down by another; the stored event with that id tells them apart.
// This costs a lookup per item, and only on this failure path.
func (s *Server) settleAtomicFailure(r *http.Request, accountID string, items []batchItem) {
	var conflicts []int
	found := 0
	for i := range items {
		it := &items[i]
		err := it.result.Err
		switch {
		case err == nil || it.err != nil || it.sameAs >= 0:
			continue
		case herald.ErrorCode(err) != herald.ECONFLICT:
			it.err = prefixError(err, itemPointer(i))
			found++
			continue
		case !it.clientID:
			continue // a fresh id cannot be taken
		}
		conflicts = append(conflicts, i)
		stored, ferr := s.events.FindEventByID(r.Context(), accountID, it.event.ID)
		switch {
		case ferr == nil && stored.Hash != it.event.Hash:
			it.err = conflictError(it.event.ID, itemPointer(i))
			found++
		case ferr != nil && herald.ErrorCode(ferr) != herald.ENOTFOUND:
			it.err = prefixError(fmt.Errorf("find event %s after a failed atomic batch: %w", it.event.ID, ferr), itemPointer(i))
			found++
		}
	}
	if found == 0 {
		// The store failed the batch but no lookup shows why: report its
		// own verdicts rather than claim that nothing was wrong.
		for _, i := range conflicts {
			items[i].err = conflictError(items[i].event.ID, itemPointer(i))
		}
	}
}

// answerBatch writes the per-item results: 200 in general, or for an
// atomic batch that failed a problem (400, or 409 when every failure is an
// id conflict, or 500) that carries them.
func (s *Server) answerBatch(w http.ResponseWriter, r *http.Request, items []batchItem, atomic bool) {
	var failedIdx []int
	var fields []herald.FieldError
	onlyConflicts, internal := true, false
	for i := range items {
		if err := items[i].err; err != nil {
			failedIdx = append(failedIdx, i)
			code := herald.ErrorCode(err)
			onlyConflicts = onlyConflicts && code == herald.ECONFLICT
			internal = internal || kindOf(code) == kindInternal
			var e *herald.Error
			if errors.As(err, &e) && kindOf(code) != kindInternal {
				fields = append(fields, e.Fields...)
			}
		}
	}
	batchFailed := atomic && len(failedIdx) > 0
	batchStatus := http.StatusOK
	switch {
	case !batchFailed:
	case internal:
		batchStatus = http.StatusInternalServerError
	case onlyConflicts:
		batchStatus = http.StatusConflict
	default:
		batchStatus = http.StatusBadRequest
	}

	out := batchResult{Results: make([]batchItemResult, len(items))}
	for i := range items {
		it := &items[i]
		res := batchItemResult{Index: i}
		if it.event != nil && (it.clientID || it.err == nil && !it.aborted) {
			res.ID = it.event.ID
		}
		switch {
		case it.err != nil:
			res.Status = itemFailed
			res.Problem = s.itemProblem(r, it.err)
			out.Failed++
		case it.aborted:
			res.Status = itemFailed
			res.Problem = kindAborted.problem(fmt.Sprintf("not stored: the batch is atomic and %s failed", eventList(failedIdx)))
			res.Problem.Status = batchStatus
			out.Failed++
		default:
			t := it.result.ReceivedAt.UTC()
			res.Seq, res.ReceivedAt = it.result.Seq, &t
			res.SessionID, res.Flags = it.result.SessionID, it.result.Flags
			if it.result.Duplicate {
				res.Status = itemDuplicate
				out.Duplicates++
			} else {
				res.Status = itemCreated
				out.Created++
			}
		}
		out.Results[i] = res
	}
	if out.Created > 0 {
		s.metrics.eventsStored.Add(float64(out.Created))
	}
	if !batchFailed {
		writeJSON(w, http.StatusOK, out)
		return
	}

	var p *Problem
	detail := fmt.Sprintf("nothing was stored: the batch is atomic and %s of %d failed", eventList(failedIdx), len(items))
	switch batchStatus {
	case http.StatusInternalServerError:
		// Show the first internal item's problem: its ref is in the log.
		for _, i := range failedIdx {
			if q := *out.Results[i].Problem; q.Status == http.StatusInternalServerError {
				p = &q
				break
			}
		}
	case http.StatusConflict:
		p = kindConflict.problem(detail)
		p.Errors = fields
	default:
		p = kindInvalid.problem(detail)
		p.Errors = fields
	}
	p.Instance = r.URL.Path
	if info := infoFrom(r.Context()); info.detail == "" {
		info.detail = p.Detail
	}
	writeBody(w, p.Status, "application/problem+json", batchFailure{Problem: p, batchResult: out})
}

// itemProblem is the problem of one failed item, without an instance (the
// item has no URL of its own).
func (s *Server) itemProblem(r *http.Request, err error) *Problem {
	var e *herald.Error
	if errors.As(err, &e) && kindOf(e.Code) != kindInternal {
		return problemFor(e)
	}
	return s.internal(r, err)
}

// eventList names failed items: "event 3", "events 1, 4 and 7", "12 events".
func eventList(idx []int) string {
	switch {
	case len(idx) == 1:
		return fmt.Sprintf("event %d", idx[0])
	case len(idx) > 5:
		return fmt.Sprintf("%d events", len(idx))
	}
	parts := make([]string, len(idx))
	for i, n := range idx {
		parts[i] = strconv.Itoa(n)
	}
	return "events " + strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func itemPointer(i int) string { return "/events/" + strconv.Itoa(i) }

// prefixError moves the pointers of err under prefix, the place of the
// event within the request, and says so in the message. Errors that are not
// *herald.Error pass unchanged.
func prefixError(err error, prefix string) error {
	var e *herald.Error
	if !errors.As(err, &e) {
		return err
	}
	out := &herald.Error{Code: e.Code, Message: e.Message}
	for _, f := range e.Fields {
		out.Fields = append(out.Fields, herald.FieldError{Pointer: prefix + f.Pointer, Detail: f.Detail})
	}
	if len(out.Fields) == 0 {
		out.Fields = []herald.FieldError{{Pointer: prefix, Detail: e.Message}}
	}
	out.Message = out.Fields[0].Pointer + ": " + out.Fields[0].Detail
	if len(out.Fields) > 1 {
		out.Message += fmt.Sprintf(" (and %d more)", len(out.Fields)-1)
	}
	return out
}

// splitBatch cuts a batch body into its events: {"events": [...]}, or one
// event per line when the body is NDJSON. It fails the whole request only
// when the body as a whole cannot be read; a bad NDJSON line is left for
// ParseEvent to refuse as that item.
func splitBatch(contentType string, body []byte) ([]json.RawMessage, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	var items []json.RawMessage
	if mt == "application/x-ndjson" {
		for len(body) > 0 {
			var line []byte
			line, body, _ = bytes.Cut(body, []byte("\n"))
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			if len(items) == herald.MaxBatchEvents {
				return nil, tooManyEvents()
			}
			items = append(items, json.RawMessage(line))
		}
		if len(items) == 0 {
			return nil, herald.FieldErrorf("", "holds no events: send one JSON object per line")
		}
		return items, nil
	}

	// Stream the array, so that a body of a million tiny items is refused
	// at item 1,001 rather than decoded first.
	dec := json.NewDecoder(bytes.NewReader(body))
	notBatch := herald.FieldErrorf("", `must be a JSON object {"events": [...]}, or NDJSON sent as application/x-ndjson`)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, notBatch
	}
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		name, _ := tok.(string)
		if name != "events" {
			return nil, herald.FieldErrorf("/"+escapePointer(name), "unknown field (a batch has only \"events\")")
		}
		if seen {
			return nil, herald.FieldErrorf("/events", "is given twice")
		}
		seen = true
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			if err != nil {
				return nil, jsonError(err)
			}
			return nil, herald.FieldErrorf("/events", "must be an array of events")
		}
		for dec.More() {
			if len(items) == herald.MaxBatchEvents {
				return nil, tooManyEvents()
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, jsonError(err)
			}
			items = append(items, raw)
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, jsonError(err)
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, herald.FieldErrorf("", "must be a single JSON object")
	}
	if !seen {
		return nil, herald.FieldErrorf("/events", "is required")
	}
	if len(items) == 0 {
		return nil, herald.FieldErrorf("/events", "must hold at least one event")
	}
	return items, nil
}

func tooManyEvents() error {
	return herald.Errorf(herald.ETOOLARGE, "a batch may hold at most %d events; send the rest in another request", herald.MaxBatchEvents)
}
