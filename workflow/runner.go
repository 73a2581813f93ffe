package workflow

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald"
)

const (
	// maxErrorText is how much of an error a step or run keeps.
	maxErrorText = 1024
	// maxRetryAfter bounds the wait a receiver may ask for (429, 503).
	maxRetryAfter = 24 * time.Hour
)

// runLoop claims due runs and performs them, at most MaxRuns at once.
func (e *Engine) runLoop() {
	// performing holds the runs under way here. A run whose lease ran out
	// while this node was still at it (a slow store, a loaded machine)
	// comes back from ClaimRuns under this node's own name: the lease
	// cannot tell the two apart, so this does, and the run is performed
	// once.
	performing := map[runKey]bool{}
	finished := make(chan runKey, e.opts.MaxRuns)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		pause := false
		if free := e.opts.MaxRuns - len(performing); free > 0 {
			now := e.opts.Now()
			runs, err := e.store.ClaimRuns(e.ctx, e.opts.Owner, now, e.opts.LeaseTTL, free)
			if err != nil {
				if e.ctx.Err() != nil {
					return
				}
				e.metrics.storeErrors.Inc()
				e.log.Error("claim workflow runs", "err", err)
				pause = true
			} else if len(runs) < free {
				e.claimedUpTo(now)
			}
			for _, r := range runs {
				k := runKey{r.AccountID, r.ID}
				if performing[k] {
					continue
				}
				performing[k] = true
				e.wg.Add(1)
				go func() {
					defer e.wg.Done()
					e.perform(r)
					finished <- k
				}()
			}
		}
		wait := e.opts.PollInterval
		if pause {
			wait = storePause
		} else if due := e.nextDue(); !due.IsZero() {
			wait = min(wait, max(due.Sub(e.opts.Now()), 0))
		}
		timer.Reset(wait)
		select {
		case <-e.ctx.Done():
			return
		case k := <-finished:
			delete(performing, k)
		case <-e.runWake:
		case <-timer.C:
		}
	}
}

// runKey names a run: run ids are unique per account.
type runKey struct{ account, id string }

// stepFailure is why a step failed.
type stepFailure struct {
	err error
	// permanent: trying again cannot help (a 400, an invalid event).
	permanent bool
	// retryAfter is the wait the receiver asked for (429, 503).
	retryAfter time.Duration
}

// perform performs a claimed run's steps from its next one, saving after
// each, until it completes, fails or must wait for a retry.
func (e *Engine) perform(run *herald.WorkflowRun) {
	ctx := e.ctx
	log := e.log.With("account", run.AccountID, "workflow", run.Workflow, "run", run.ID)
	wf, err := e.store.FindWorkflow(ctx, run.AccountID, run.Workflow)
	if err != nil {
		if herald.ErrorCode(err) == herald.ENOTFOUND {
			log.Info("workflow run abandoned: its workflow was deleted")
		} else if ctx.Err() == nil {
			e.metrics.storeErrors.Inc()
			log.Error("load workflow of run", "err", err)
		}
		return // the lease runs out and the run is claimed again
	}
	wf.SetDefaults()
	if len(run.Steps) == 0 {
		for _, s := range wf.Steps {
			if s != nil {
				run.Steps = append(run.Steps, &herald.StepRun{Name: s.Name, Kind: s.Kind, State: herald.StepPending})
			}
		}
	}

	var events []*herald.Event
	now := e.now()
	if run.Step == 0 && len(run.Steps) > 0 && run.Steps[0].StartedAt == nil {
		ev, err := runEvent(run, herald.VerbStarted, now, fmt.Sprintf("run %s for event %s", run.ID, run.EventID))
		if err != nil {
			log.Error("encode workflow started event", "err", err)
			return
		}
		events = append(events, ev)
	}
	trigger, err := e.store.FindEventByID(ctx, run.AccountID, run.EventID)
	if err != nil {
		if herald.ErrorCode(err) != herald.ENOTFOUND {
			if ctx.Err() == nil {
				e.metrics.storeErrors.Inc()
				log.Error("load triggering event of run", "event", run.EventID, "err", err)
			}
			return
		}
		e.fail(run, nil, fmt.Sprintf("triggering event %s is no longer stored", run.EventID), events, log)
		return
	}

	for run.Step < len(run.Steps) {
		// A run performs the steps it was made with, each as the
		// workflow defines it now (a fixed URL applies to the retries).
		sr := run.Steps[run.Step]
		step, idx := findStep(wf, sr.Name)
		if step == nil {
			e.fail(run, sr, fmt.Sprintf("step %s is no longer in the workflow", sr.Name), events, log)
			return
		}
		now = e.now()
		if sr.StartedAt == nil {
			sr.StartedAt = stamp(now)
		}
		// The lease must outlast the step: a node that did not renew it
		// in time would see another perform the step too.
		run.State = herald.RunRunning
		if !e.save(run, now.Add(time.Duration(step.Timeout)+e.opts.LeaseTTL), events, log) {
			return
		}
		if len(events) > 0 {
			e.metrics.runs.WithLabelValues(outcomeStarted).Inc()
		}
		events = nil

		out, fail := e.performStep(run, wf, idx, step, trigger)
		if ctx.Err() != nil {
			// Cut short by Close: performed again later, not counted.
			return
		}
		now = e.now()
		sr.Attempts++
		if fail == nil {
			e.metrics.steps.WithLabelValues(step.Kind, herald.StepSucceeded).Inc()
			sr.State, sr.Output, sr.Error, sr.FinishedAt = herald.StepSucceeded, out, "", stamp(now)
			run.Step++
			continue
		}
		sr.Error = truncate(fail.err.Error())
		if fail.permanent || sr.Attempts > len(step.RetrySchedule) {
			e.metrics.steps.WithLabelValues(step.Kind, herald.StepFailed).Inc()
			e.fail(run, sr, sr.Error, nil, log)
			return
		}
		e.metrics.steps.WithLabelValues(step.Kind, "retried").Inc()
		wait := min(fail.retryAfter, maxRetryAfter)
		if wait <= 0 {
			scheduled := time.Duration(step.RetrySchedule[sr.Attempts-1])
			wait = time.Duration(float64(scheduled) * (0.8 + 0.4*rand.Float64()))
		}
		run.State, run.NextAt = herald.RunPending, now.Add(wait)
		log.Info("workflow step failed; trying again later", "step", sr.Name, "attempt", sr.Attempts, "wait", wait.Round(time.Millisecond), "err", sr.Error)
		if e.save(run, time.Time{}, nil, log) {
			e.scheduled(run.NextAt)
		}
		return
	}

	now = e.now()
	run.State, run.NextAt, run.Error, run.FinishedAt = herald.RunCompleted, time.Time{}, "", stamp(now)
	ev, err := runEvent(run, herald.VerbCompleted, now, fmt.Sprintf("run %s for event %s", run.ID, run.EventID))
	if err != nil {
		log.Error("encode workflow completed event", "err", err)
		return
	}
	if e.save(run, time.Time{}, append(events, ev), log) {
		e.metrics.runs.WithLabelValues(herald.RunCompleted).Inc()
		log.Debug("workflow run completed")
	}
}

// fail ends run as failed, sr being the step at fault (nil: none),
// with the failed system event.
func (e *Engine) fail(run *herald.WorkflowRun, sr *herald.StepRun, reason string, events []*herald.Event, log *slog.Logger) {
	now := e.now()
	notes := reason
	if sr != nil {
		sr.State, sr.FinishedAt = herald.StepFailed, stamp(now)
		notes = "step " + sr.Name + ": " + reason
	}
	run.State, run.NextAt, run.Error, run.FinishedAt = herald.RunFailed, time.Time{}, truncate(notes), stamp(now)
	ev, err := runEvent(run, herald.VerbFailed, now, run.Error)
	if err != nil {
		log.Error("encode workflow failed event", "err", err)
		return
	}
	if e.save(run, time.Time{}, append(events, ev), log) {
		e.metrics.runs.WithLabelValues(herald.RunFailed).Inc()
		log.Warn("workflow run failed", "err", run.Error)
	}
}

// save stores run with events, its lease extended to leaseUntil (zero:
// freed, for a run finished or pending), and reports whether it did. A
// run this node no longer holds is left to its new holder.
func (e *Engine) save(run *herald.WorkflowRun, leaseUntil time.Time, events []*herald.Event, log *slog.Logger) bool {
	run.UpdatedAt = e.now()
	err := e.store.SaveRun(e.ctx, run, e.opts.Owner, leaseUntil, events)
	switch {
	case err == nil:
		if len(events) > 0 {
			// The system events are the account's: workflows and
			// subscriptions may be waiting for them.
			e.Notify(run.AccountID)
		}
		return true
	case e.ctx.Err() != nil:
	case herald.ErrorCode(err) == herald.ECONFLICT || herald.ErrorCode(err) == herald.ENOTFOUND:
		log.Info("workflow run lease lost; leaving it to its holder", "err", err)
	default:
		e.metrics.storeErrors.Inc()
		log.Error("save workflow run", "err", err)
	}
	return false
}

// stamp returns a time of its own to point at: a run's times must not
// share the variable the runner goes on updating.
func stamp(t time.Time) *time.Time { return &t }

func (e *Engine) now() time.Time { return e.opts.Now().UTC().Truncate(time.Microsecond) }

// findStep returns the workflow's step of that name and its index.
func findStep(wf *herald.Workflow, name string) (*herald.WorkflowStep, int) {
	for i, s := range wf.Steps {
		if s != nil && s.Name == name {
			return s, i
		}
	}
	return nil, -1
}

// stepOutputs returns the outputs of the steps that succeeded so far, by
// name: what an input program or a template sees as steps.
func stepOutputs(run *herald.WorkflowRun) json.RawMessage {
	m := make(map[string]json.RawMessage, run.Step)
	for _, s := range run.Steps {
		if s.State == herald.StepSucceeded && len(s.Output) > 0 {
			m[s.Name] = s.Output
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}

func truncate(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// permanentf is a failure that trying again cannot mend.
func permanentf(format string, args ...any) *stepFailure {
	return &stepFailure{err: fmt.Errorf(format, args...), permanent: true}
}

// isPermanentAppend reports whether an append's error would come again.
func isPermanentAppend(err error) bool {
	switch herald.ErrorCode(err) {
	case herald.EINVALID, herald.ETOOLARGE:
		return true
	}
	return false
}
