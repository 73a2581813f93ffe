package workflow

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald"
)

const (
	// storePause is the wait after a failed read or write of the store.
	storePause = time.Second
	// cursorSaveInterval spaces the saves that only move a cursor past
	// events that trigger nothing: one write per second at most per
	// workflow, not one per commit of the account.
	cursorSaveInterval = time.Second
	// depthLimitPrefix starts the error of a run refused for its depth.
	depthLimitPrefix = "depth limit: "
)

// reader reads one workflow's triggers from the log and enqueues its
// runs.
//
// Each event is judged by the workflow as it was when the event was
// stored, not as it is when the reader gets to it: the reader follows
// the workflow's changes (its "updated" system events, which record the
// members changed, before and after) in the log, in order. So an event
// stored right after a resume runs, one stored right after a pause does
// not, whenever this node hears of the change, and whichever node reads.
type reader struct {
	e       *Engine
	account string
	name    string
	// cfg is the workflow as last leased: where judge starts from.
	cfg  atomic.Pointer[herald.Workflow]
	prev *reader
	// judge is the workflow as it was at the cursor (its state, filter,
	// max depth and steps).
	judge *herald.Workflow
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	// cursor is how far the log was read; saved, how far the store
	// knows. finalCursor is what a successor goes on from, set before
	// done is closed.
	cursor, saved int64
	lastSave      time.Time
	finalCursor   int64
}

// newReader returns the reader of w, not yet running; prev, if any, is
// its predecessor (lease.Config.New).
func (e *Engine) newReader(w *herald.Workflow, prev *reader) *reader {
	ctx, cancel := context.WithCancel(e.ctx)
	r := &reader{
		e:       e,
		account: w.AccountID,
		name:    w.Name,
		prev:    prev,
		log:     e.log.With("account", w.AccountID, "workflow", w.Name),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		cursor:  w.Cursor,
		saved:   w.Cursor,
	}
	r.cfg.Store(w)
	return r
}

// Stop asks the reader to stop; what it read is saved.
func (r *reader) Stop() { r.cancel() }

// WakeUp tells the reader that there are new events.
func (r *reader) WakeUp() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Renew gives the reader the workflow as last leased: where a reader
// started anew begins. Changes reach a running reader through the log,
// so it never needs replacing; refreshed has it read at once.
func (r *reader) Renew(w *herald.Workflow, refreshed bool) bool {
	r.cfg.Store(w)
	if refreshed {
		r.WakeUp()
	}
	return true
}

// Run reads the log and triggers runs until stopped, after waiting for
// its predecessor.
func (r *reader) Run() {
	defer close(r.done)
	defer r.cancel()
	defer func() { r.finalCursor = r.cursor }()
	if r.prev != nil {
		select {
		case <-r.prev.done:
			r.cursor = max(r.cursor, r.prev.finalCursor)
		case <-r.ctx.Done():
			return
		}
		r.prev = nil
	}
	for !r.initJudge() {
		if !r.e.sleepCtx(r.ctx, storePause) {
			return
		}
	}
	poll := time.NewTimer(0)
	defer poll.Stop()
	for r.ctx.Err() == nil {
		full, ok := r.readPage()
		if !ok {
			if !r.e.sleepCtx(r.ctx, storePause) {
				return
			}
			continue
		}
		if full {
			continue
		}
		wait := r.e.opts.PollInterval
		if r.cursor > r.saved {
			wait = min(wait, max(time.Until(r.lastSave.Add(cursorSaveInterval)), 0))
		}
		poll.Reset(wait)
		select {
		case <-r.ctx.Done():
		case <-r.wake:
		case <-poll.C:
		}
		if r.cursor > r.saved && time.Since(r.lastSave) >= cursorSaveInterval && r.ctx.Err() == nil {
			_ = r.save(nil, nil) // failed: the cursor is saved later
		}
	}
}

// readPage reads the events after the cursor and enqueues the runs they
// trigger. It reports whether the page was full (more to read at once)
// and whether it went well.
func (r *reader) readPage() (full, ok bool) {
	size := r.e.opts.PageSize
	evs, err := r.e.store.FindEvents(r.ctx, r.account, herald.EventFilter{AfterSeq: r.cursor, Limit: size})
	if err != nil {
		r.storeError("read events", err)
		return false, false
	}
	if len(evs) == 0 {
		return false, true
	}
	judge := r.judge
	runs, events, err := r.triggers(evs)
	if err != nil {
		r.judge = judge // the page is read again
		r.storeError("find triggers", err)
		return false, false
	}
	last := evs[len(evs)-1].Seq
	if len(runs) == 0 && len(events) == 0 && time.Since(r.lastSave) < cursorSaveInterval {
		// Nothing to store but the cursor: later, with what comes next.
		r.cursor = last
		return len(evs) == size, true
	}
	prevCursor := r.cursor
	r.cursor = last
	if err := r.save(runs, events); err != nil {
		r.cursor, r.judge = prevCursor, judge
		return false, false
	}
	if len(runs) > 0 {
		r.e.metrics.triggered.Add(float64(len(runs)))
		r.e.wakeRunner()
	}
	if len(events) > 0 {
		// The failed system events of runs refused for depth are events
		// of the account, which other workflows may be waiting for.
		r.e.Notify(r.account)
	}
	return len(evs) == size, true
}

// save stores runs and events and moves the workflow's cursor to
// r.cursor. Having lost the lease, the reader stops.
func (r *reader) save(runs []*herald.WorkflowRun, events []*herald.Event) error {
	err := r.e.store.EnqueueRuns(r.ctx, r.account, r.name, r.e.opts.Owner, r.cursor, runs, events)
	if err != nil {
		if herald.ErrorCode(err) == herald.ECONFLICT {
			r.log.Info("workflow lease lost; stopping its reader", "err", err)
			r.cancel()
			return err
		}
		r.storeError("enqueue runs", err)
		return err
	}
	r.saved, r.lastSave = r.cursor, time.Now()
	return nil
}

func (r *reader) storeError(op string, err error) {
	if r.ctx.Err() != nil {
		return
	}
	r.e.metrics.storeErrors.Inc()
	r.log.Error("workflow store error", "op", op, "err", err)
}

// initJudge sets judge to the workflow as it was at the cursor: the
// leased copy with the changes recorded after the cursor undone, latest
// first. The copy was read before the changes were looked up, so a change
// it lacks has "before" values equal to its own, and undoing it changes
// nothing.
func (r *reader) initJudge() bool {
	c := *r.cfg.Load()
	var changes []*herald.Event
	after := r.cursor
	for {
		evs, err := r.e.store.FindEvents(r.ctx, r.account, herald.EventFilter{
			Category: herald.SubjectWorkflow, PrimaryID: r.name, Type: herald.VerbUpdated,
			Origin: herald.OriginSystem, AfterSeq: after, Limit: r.e.opts.PageSize,
		})
		if err != nil {
			r.storeError("read workflow changes", err)
			return false
		}
		changes = append(changes, evs...)
		if len(evs) < r.e.opts.PageSize {
			break
		}
		after = evs[len(evs)-1].Seq
	}
	for i := len(changes) - 1; i >= 0; i-- {
		applyChange(&c, changes[i], "before")
	}
	r.judge = &c
	return true
}

// applyChange sets on w the members that a change (its updated system
// event) recorded on side, "before" or "after": those the reader judges
// events by.
func applyChange(w *herald.Workflow, ev *herald.Event, side string) {
	var data map[string]json.RawMessage
	if json.Unmarshal(ev.Data, &data) != nil {
		return
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(data[side], &members) != nil {
		return
	}
	for k, v := range members {
		switch k {
		case "state":
			var s string
			if json.Unmarshal(v, &s) == nil && s != "" {
				w.State = s
			}
		case "filter":
			var f *herald.Filter
			if json.Unmarshal(v, &f) == nil {
				w.Filter = f
			}
		case "maxDepth":
			var d int
			if json.Unmarshal(v, &d) == nil && d > 0 {
				w.MaxDepth = d
			}
		case "steps":
			// Redacted, but the names and kinds, which is what a run
			// is made with, are there.
			var steps []*herald.WorkflowStep
			if json.Unmarshal(v, &steps) == nil {
				w.Steps = steps
			}
		}
	}
}

// triggers returns the runs the events trigger, and the system events of
// those refused for their depth. It moves judge along the workflow's
// changes it meets.
func (r *reader) triggers(evs []*herald.Event) ([]*herald.WorkflowRun, []*herald.Event, error) {
	var runs []*herald.WorkflowRun
	var events []*herald.Event
	types := map[[2]string]*herald.EventType{}
	parents := map[string]*herald.WorkflowRun{}
	for _, ev := range evs {
		if ev.Category == herald.SubjectWorkflow && ev.PrimaryID == r.name && ev.Origin == herald.OriginSystem {
			// Never triggered by what is said about itself; a change
			// applies to the events stored after it.
			if ev.Type == herald.VerbUpdated {
				c := *r.judge
				applyChange(&c, ev, "after")
				r.judge = &c
			}
			continue
		}
		w := r.judge
		trigger := ""
		if w.Filter != nil && w.Filter.Match(ev) {
			trigger = herald.TriggerFilter
		} else if ev.EventStatus != "" {
			t, err := r.eventType(types, ev)
			if err != nil {
				return nil, nil, err
			}
			if t != nil {
				if s := t.Status(ev.EventStatus); s != nil && slices.Contains(s.Workflows, w.Name) {
					trigger = herald.TriggerStatus
				}
			}
		}
		if trigger == "" || w.State != herald.WorkflowActive {
			// A paused workflow skips its triggers for good.
			continue
		}
		run, event, err := r.newRun(w, ev, trigger, parents)
		if err != nil {
			return nil, nil, err
		}
		runs = append(runs, run)
		if event != nil {
			events = append(events, event)
		}
	}
	return runs, events, nil
}

// eventType returns ev's registered type, nil if it has none, from the
// page's cache.
func (r *reader) eventType(cache map[[2]string]*herald.EventType, ev *herald.Event) (*herald.EventType, error) {
	k := [2]string{ev.Category, ev.Type}
	if t, ok := cache[k]; ok {
		return t, nil
	}
	t, err := r.e.opts.Catalog.EventType(r.ctx, r.account, ev.Category, ev.Type)
	if err != nil {
		if herald.ErrorCode(err) != herald.ENOTFOUND {
			return nil, fmt.Errorf("event type %s/%s: %w", ev.Category, ev.Type, err)
		}
		t = nil
	}
	cache[k] = t
	return t, nil
}

// newRun returns the run ev triggers: pending, or failed already when it
// would go deeper than the workflow allows, with its failed system event.
func (r *reader) newRun(w *herald.Workflow, ev *herald.Event, trigger string, parents map[string]*herald.WorkflowRun) (*herald.WorkflowRun, *herald.Event, error) {
	var parent *herald.WorkflowRun
	depth := 1
	if ev.AgentType == herald.AgentTypeWorkflow && ev.AgentID != "" {
		p, ok := parents[ev.AgentID]
		if !ok {
			var err error
			p, err = r.e.store.FindWorkflowRun(r.ctx, r.account, ev.AgentID)
			if err != nil && herald.ErrorCode(err) != herald.ENOTFOUND {
				return nil, nil, fmt.Errorf("run %s that emitted event %s: %w", ev.AgentID, ev.ID, err)
			}
			parents[ev.AgentID] = p
		}
		if p != nil {
			parent, depth = p, p.Depth+1
		}
	}
	now := r.e.opts.Now().UTC().Truncate(time.Microsecond)
	run := &herald.WorkflowRun{
		ID:        r.e.opts.NewID(),
		AccountID: r.account,
		Workflow:  w.Name,
		EventID:   ev.ID,
		Seq:       ev.Seq,
		Trigger:   trigger,
		Depth:     depth,
		State:     herald.RunPending,
		NextAt:    now,
		CreatedAt: now,
		UpdatedAt: now,
	}
	for _, s := range w.Steps {
		if s != nil {
			run.Steps = append(run.Steps, &herald.StepRun{Name: s.Name, Kind: s.Kind, State: herald.StepPending})
		}
	}
	if depth <= w.MaxDepth {
		return run, nil, nil
	}
	run.State, run.NextAt, run.FinishedAt = herald.RunFailed, time.Time{}, &now
	run.Error = fmt.Sprintf("%srun would be %d deep, over maxDepth %d (event %s was emitted by run %s of workflow %s)",
		depthLimitPrefix, depth, w.MaxDepth, ev.ID, parent.ID, parent.Workflow)
	r.e.metrics.runs.WithLabelValues(herald.RunFailed).Inc()
	r.log.Warn("workflow run refused", "run", run.ID, "event", ev.ID, "err", run.Error)
	if parent.State == herald.RunFailed && strings.HasPrefix(parent.Error, depthLimitPrefix) {
		// ev is the failed system event of a run refused for its depth:
		// a system event for this one would trigger the next, and a
		// pair of workflows that watch each other's failures would
		// refuse runs for ever. The run is kept, quietly.
		return run, nil, nil
	}
	sys, err := runEvent(run, herald.VerbFailed, now, run.Error)
	if err != nil {
		return nil, nil, err
	}
	return run, sys, nil
}

// runEvent is a system event about run r: started, completed or failed.
// Its agent is the run, so that a run it triggers is one deeper.
func runEvent(r *herald.WorkflowRun, verb string, at time.Time, notes string) (*herald.Event, error) {
	return herald.SystemEvent{
		AccountID:   r.AccountID,
		SubjectType: herald.SubjectWorkflow,
		SubjectID:   r.Workflow,
		Verb:        verb,
		By:          herald.Actor{Type: herald.AgentTypeWorkflow, ID: r.ID},
		At:          at,
		Notes:       notes,
		Fields:      map[string]any{"runId": r.ID, "eventId": r.EventID, "depth": r.Depth},
	}.Event()
}
