package httpapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/heraldhq/herald"
)

// workReadOnly are the members Herald sets of a job. PUT accepts and
// ignores them, so that a job read with GET can be changed and sent back
// as it is; POST refuses them. Kind is the route's, checked on its own.
var workReadOnly = []string{"id", "state", "stateReason", "runtime", "runNowAt", "createdAt", "updatedAt", "nextRunAt"}

// historyQueryParams are the query parameters of GET
// /v1/work/{id}/history.
var historyQueryParams = []string{"limit", "before"}

// workView is a job as the API shows it: without secrets (the DSN's
// password, SMTP passwords, header values), lists empty as [], and when
// its next cycle is due.
type workView struct {
	*herald.Work
	// NextRunAt is when an active batch export runs its next cycle: the
	// time a client asked for with POST …/run, else its schedule's.
	NextRunAt *time.Time `json:"nextRunAt,omitempty"`
}

func (s *Server) workView(wk *herald.Work) workView {
	c := wk.Redact() // copies what it redacts: those may be changed here
	if c.Export != nil && c.Export.RetrySchedule == nil {
		c.Export.RetrySchedule = []herald.Duration{}
	}
	if c.Alert != nil && c.Alert.RetrySchedule == nil {
		c.Alert.RetrySchedule = []herald.Duration{}
	}
	return workView{Work: c, NextRunAt: nextRunAt(c, s.now().UTC().Truncate(timePrecision))}
}

// nextRunAt says when an active batch export runs its next cycle; nil for
// other jobs, which run as events come.
func nextRunAt(wk *herald.Work, now time.Time) *time.Time {
	if wk.State != herald.WorkActive || wk.Export == nil || wk.Export.Mode != herald.ExportBatch {
		return nil
	}
	rt := wk.Runtime
	switch {
	case wk.RunNowAt != nil && (rt.RanNowAt == nil || wk.RunNowAt.After(*rt.RanNowAt)):
		return wk.RunNowAt
	case rt.NextRunAt != nil:
		return rt.NextRunAt
	}
	// The engine has not planned one yet: the first cycle, due now (or at
	// the cron schedule's next time).
	var last time.Time
	if rt.LastCycle != nil {
		last = rt.LastCycle.StartedAt
	}
	at := wk.Export.NextRun(last, now)
	if at.IsZero() {
		return nil
	}
	return &at
}

type workList struct {
	Work []workView `json:"work"`
}

// historyPage is one page of GET /v1/work/{id}/history. Next, set when
// older records follow, is what to pass as ?before= for them.
type historyPage struct {
	Records []*herald.WorkRecord `json:"records"`
	Next    string               `json:"next,omitempty"`
	HasMore bool                 `json:"hasMore"`
}

func workNotFound(id string) error {
	return herald.Errorf(herald.ENOTFOUND, "no job %q in this account", id)
}

// workErr maps a store error about job id: ENOTFOUND to the 404 that
// names it, anything else wrapped with what was done.
func workErr(err error, id, doing string) error {
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return workNotFound(id)
	}
	return fmt.Errorf("%s job %s: %w", doing, id, err)
}

// findWork returns the job the path names, in the caller's account.
func (s *Server) findWork(r *http.Request) (*herald.Work, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxFilterLength {
		return nil, workNotFound(id) // none could have this id
	}
	wk, err := s.work.FindWork(r.Context(), keyFrom(r.Context()).AccountID, id)
	if err != nil {
		return nil, workErr(err, id, "find")
	}
	return wk, nil
}

// decodeWork decodes the body of a job of kind: a Work (its kind may be
// left out), or a Lytics job body. wrongKind says why a body's other kind
// is refused. It returns a nil job, with the errors, when the body is too
// far off to check further.
func decodeWork(members map[string]json.RawMessage, kind string, put bool, wrongKind string) (wk *herald.Work, lytics bool, errs []herald.FieldError) {
	if isLyticsJob(members) {
		job, errs := decodeLyticsJob(members)
		switch {
		case job == nil:
			return nil, true, errs
		case kind == herald.WorkExport:
			return lyticsExport(job), true, errs
		default:
			return lyticsAlert(job), true, errs
		}
	}
	if raw, ok := members["kind"]; ok {
		var k string
		if decodeAt(raw, "/kind", &k) != nil || k != kind {
			errs = append(errs, herald.FieldError{Pointer: "/kind", Detail: wrongKind})
		}
		members = maps.Clone(members)
		delete(members, "kind")
	}
	wk = &herald.Work{Kind: kind}
	return wk, false, append(errs, decodeDefinition(members, workReadOnly, put, wk)...)
}

// checkWork sets wk's defaults, then checks it by its rules, compiles its
// template and checks its destination, naming every field at fault after
// those that did not decode (decoded). For a Lytics job body, the fields
// are named where that body has them.
func (s *Server) checkWork(wk *herald.Work, lytics bool, decoded []herald.FieldError) error {
	wk.SetDefaults()
	ruled, err := ruleErrors(wk.Validate(), "job")
	if err != nil {
		return err
	}
	compiled, err := s.compileTemplates(wk.Templates())
	if err != nil {
		return err
	}
	ruled = append(ruled, compiled...)
	move := unmoved
	if x := wk.Export; x != nil {
		ruled = append(ruled, redactedLeft("/export/destination", x.Destination.Headers, nil)...)
		if s.checkDest != nil {
			checked, err := ruleErrors(s.checkDest(&x.Destination), "export destination")
			if err != nil {
				return err
			}
			ruled = append(ruled, checked...)
		}
		if lytics {
			move = lyticsExportPointers.move
		}
	}
	if a := wk.Alert; a != nil {
		ruled = append(ruled, redactedLeft("/alert/target", a.Target.Headers, a.Target.SMTP)...)
		if lytics {
			move = lyticsAlertPointers.move
		}
	}
	return fieldErrors(joinErrors(decoded, ruled, move))
}

// createExport makes an export job.
func (s *Server) createExport(w http.ResponseWriter, r *http.Request) error {
	return s.createWork(w, r, herald.WorkExport, "/v1/exports")
}

// createAlert makes an alert job.
func (s *Server) createAlert(w http.ResponseWriter, r *http.Request) error {
	return s.createWork(w, r, herald.WorkAlert, "/v1/alerts")
}

// createWork makes a job of kind, from the body of POST path. It starts
// at once: its engine is told.
func (s *Server) createWork(w http.ResponseWriter, r *http.Request, kind, path string) error {
	key := keyFrom(r.Context())
	members, err := readMembers(w, r, "a job")
	if err != nil {
		return err
	}
	wk, lytics, decoded := decodeWork(members, kind, false,
		fmt.Sprintf("must be %q (or be left out): POST %s makes %s jobs", kind, path, kind))
	if wk == nil {
		return fieldErrors(decoded)
	}
	wk.AccountID = key.AccountID
	if err := s.checkWork(wk, lytics, decoded); err != nil {
		return err
	}
	now := s.now().UTC().Truncate(timePrecision)
	wk.ID = herald.NewRandomID("work_")
	wk.CreatedAt, wk.UpdatedAt = now, now
	if err := s.work.CreateWork(r.Context(), wk); err != nil {
		return fmt.Errorf("create job %s: %w", wk.ID, err)
	}
	stored, err := s.work.FindWork(r.Context(), key.AccountID, wk.ID)
	if err != nil {
		return fmt.Errorf("read back job %s: %w", wk.ID, err)
	}
	s.onWork()
	w.Header().Set("Location", "/v1/work/"+url.PathEscape(wk.ID))
	writeJSON(w, http.StatusCreated, s.workView(stored))
	return nil
}

// listExports lists the account's export jobs, oldest first.
func (s *Server) listExports(w http.ResponseWriter, r *http.Request) error {
	return s.answerWorkList(w, r, herald.WorkExport)
}

// listAlerts lists the account's alert jobs, oldest first.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) error {
	return s.answerWorkList(w, r, herald.WorkAlert)
}

// listWork lists the account's jobs, oldest first: all, or those of
// ?kind=.
func (s *Server) listWork(w http.ResponseWriter, r *http.Request) error {
	var kind string
	p := &queryParser{q: r.URL.Query()}
	p.oneOf("kind", []string{herald.WorkExport, herald.WorkAlert}, &kind)
	if err := p.err(); err != nil {
		return err
	}
	return s.answerWorkList(w, r, kind)
}

func (s *Server) answerWorkList(w http.ResponseWriter, r *http.Request, kind string) error {
	list, err := s.work.FindWorks(r.Context(), keyFrom(r.Context()).AccountID, kind)
	if err != nil {
		return fmt.Errorf("find jobs: %w", err)
	}
	out := workList{Work: make([]workView, 0, len(list))}
	for _, wk := range list {
		out.Work = append(out.Work, s.workView(wk))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// answerWork answers with the job the path names, as now stored.
func (s *Server) answerWork(w http.ResponseWriter, r *http.Request, status int) error {
	wk, err := s.findWork(r)
	if err != nil {
		return err
	}
	writeJSON(w, status, s.workView(wk))
	return nil
}

// getWork answers one job, without its secrets.
func (s *Server) getWork(w http.ResponseWriter, r *http.Request) error {
	return s.answerWork(w, r, http.StatusOK)
}

// putWork replaces what a client sets of a job (name, filter, export or
// alert): a member left out takes its default. Kind, state, runtime,
// secret and times are kept, and so are the secrets sent back as read
// (herald.Redacted, or the DSN with its password masked).
func (s *Server) putWork(w http.ResponseWriter, r *http.Request) error {
	members, err := readMembers(w, r, "a job")
	if err != nil {
		return err
	}
	old, err := s.findWork(r)
	if err != nil {
		return err
	}
	wk, lytics, decoded := decodeWork(members, old.Kind, true,
		fmt.Sprintf("must be %q, the job's kind (or be left out): a job's kind does not change", old.Kind))
	if wk == nil {
		return fieldErrors(decoded)
	}
	var id string
	if raw, ok := members["id"]; ok && !lytics && !isNull(raw) && (json.Unmarshal(raw, &id) != nil || id != old.ID) {
		decoded = append(decoded, herald.FieldError{Pointer: "/id",
			Detail: fmt.Sprintf("is %s but the path names job %q; leave it out or make them agree", raw, old.ID)})
	}
	wk.ID, wk.AccountID = old.ID, old.AccountID
	wk.KeepSecrets(old)
	if err := s.checkWork(wk, lytics, decoded); err != nil {
		return err
	}
	wk.UpdatedAt = s.now().UTC().Truncate(timePrecision)
	if err := s.work.UpdateWork(r.Context(), wk); err != nil {
		return workErr(err, wk.ID, "update")
	}
	s.onWork()
	return s.answerWork(w, r, http.StatusOK)
}

// deleteWork deletes a job with its history. What it wrote stays where it
// wrote it.
func (s *Server) deleteWork(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id == "" || len(id) > maxFilterLength {
		return workNotFound(id)
	}
	if err := s.work.DeleteWork(r.Context(), keyFrom(r.Context()).AccountID, id); err != nil {
		return workErr(err, id, "delete")
	}
	s.onWork()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// pauseWork stops a job where it is; resumed, it goes on from there, so
// that an export misses nothing stored meanwhile.
func (s *Server) pauseWork(w http.ResponseWriter, r *http.Request) error {
	return s.setWorkState(w, r, herald.WorkPaused)
}

// resumeWork makes a paused or failed job active again; a failed one
// tries the cycle that failed again.
func (s *Server) resumeWork(w http.ResponseWriter, r *http.Request) error {
	return s.setWorkState(w, r, herald.WorkActive)
}

func (s *Server) setWorkState(w http.ResponseWriter, r *http.Request, state string) error {
	in, err := readStateInput(w, r)
	if err != nil {
		return err
	}
	wk, err := s.findWork(r)
	if err != nil {
		return err
	}
	reason := in.Reason
	if state == herald.WorkActive {
		reason = "" // an active job has no reason (herald.Work.ChangeState)
	}
	if wk.State == herald.WorkCompleted {
		return herald.Errorf(herald.ECONFLICT, "job %s is completed: a one-time export that finished neither pauses nor resumes; create another to export again", wk.ID)
	}
	// Asking again for the state it has changes nothing, and writes no
	// system event.
	if wk.State != state || wk.StateReason != reason {
		if err := s.work.SetWorkState(r.Context(), wk.AccountID, wk.ID, state, reason); err != nil {
			return workErr(err, wk.ID, "set the state of")
		}
		s.onWork()
	}
	return s.answerWork(w, r, http.StatusOK)
}

// runWork asks an active batch export for a cycle now, besides those of
// its schedule. The answer, 202, comes before the cycle runs: the job's
// history and system events tell when it did.
func (s *Server) runWork(w http.ResponseWriter, r *http.Request) error {
	// The body may be left empty; there is nothing to say in it.
	if err := decodeOptionalJSON(w, r, &struct{}{}); err != nil {
		return err
	}
	wk, err := s.findWork(r)
	if err != nil {
		return err
	}
	switch {
	case wk.Export == nil || wk.Export.Mode != herald.ExportBatch:
		return herald.Errorf(herald.ECONFLICT, "job %s is not a batch export: only those run cycles, on demand or by schedule (a stream sends events as they are stored, an alert fires as they match)", wk.ID)
	case wk.State != herald.WorkActive:
		return herald.Errorf(herald.ECONFLICT, "job %s is %s: resume it first (POST /v1/work/%s/resume)", wk.ID, wk.State, wk.ID)
	}
	if err := s.work.RunWorkNow(r.Context(), wk.AccountID, wk.ID, s.now().UTC().Truncate(timePrecision)); err != nil {
		return workErr(err, wk.ID, "run")
	}
	s.onWork()
	return s.answerWork(w, r, http.StatusAccepted)
}

// findWorkHistory answers one page of a job's history (its finished
// cycles and firings), newest first.
func (s *Server) findWorkHistory(w http.ResponseWriter, r *http.Request) error {
	var f herald.WorkRecordFilter
	var limit int
	p := &queryParser{q: r.URL.Query()}
	if v, ok := p.q["before"]; ok {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || n < 1 {
			p.fail("before", "must be a record id (a positive integer): the next of the previous page")
		} else {
			f.BeforeID = n
		}
	}
	p.limit(defaultRunPage, maxRunPage, &limit)
	if err := p.err(); err != nil {
		return err
	}
	wk, err := s.findWork(r)
	if err != nil {
		return err
	}
	f.Limit = limit + 1 // one more tells whether there are more
	records, err := s.work.FindWorkRecords(r.Context(), wk.AccountID, wk.ID, f)
	if err != nil {
		return workErr(err, wk.ID, "find the history of")
	}
	var page historyPage
	page.Records, page.Next, page.HasMore = cutPage(records, limit, func(rec *herald.WorkRecord) string { return strconv.FormatInt(rec.ID, 10) })
	writeJSON(w, http.StatusOK, page)
	return nil
}

// getWorkSecret answers the secret that signs the requests of the job's
// webhook destination or target.
func (s *Server) getWorkSecret(w http.ResponseWriter, r *http.Request) error {
	wk, err := s.findWork(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, secretAnswer{Secret: wk.Secret})
	return nil
}
