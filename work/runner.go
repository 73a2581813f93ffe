package work

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/export"
)

// errStop ends a runner quietly: the store refused a save because the
// job is no longer this node's to run (lease lost, paused, deleted), or
// the job finished. The lease loop starts a runner again if it should.
var errStop = errors.New("work: job no longer runs here")

// maxErrorText is how much of an error a record, a state reason or a
// system event keeps.
const maxErrorText = 1024

// runner runs one job: a loop that owns the job's runtime and saves it
// after each step.
type runner struct {
	e      *Engine
	key    jobKey
	defKey string // the definition it runs; a change restarts it
	latest atomic.Pointer[herald.Work]
	// begunRound is the engine's lease round just after the runner's
	// first save (0 before).
	begunRound atomic.Int64
	prev       *runner
	log        *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wakeCh chan struct{}

	// The loop's state.
	w        *herald.Work // the definition; State and Runtime as loaded
	rt       herald.WorkRuntime
	dirty    bool // rt holds changes not saved that may be lost (see lazy)
	lastSave time.Time
	begun    bool // the runtime is loaded and syncing written
	writer   export.Writer
	// details are the unit details of the cycle under way, for its
	// record; a cycle resumed after a restart lists only the units
	// written since.
	details []any
	// stream is a stream export's progress since its last report.
	stream streamReport
}

// newRunner returns the runner of w, not yet running; prev, if any, is
// its predecessor (lease.Config.New).
func (e *Engine) newRunner(w *herald.Work, prev *runner) *runner {
	ctx, cancel := context.WithCancel(e.ctx)
	r := &runner{
		e:      e,
		key:    jobKey{w.AccountID, w.ID},
		defKey: definitionKey(w),
		prev:   prev,
		log:    e.opts.Logger.With("account", w.AccountID, "work", w.ID, "kind", w.Kind),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		wakeCh: make(chan struct{}, 1),
		w:      w,
	}
	r.latest.Store(w)
	return r
}

// Stop asks the runner to stop: a unit write or a message under way is
// abandoned and done again later.
func (r *runner) Stop() { r.cancel() }

// exited reports whether the runner has stopped.
func (r *runner) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// WakeUp has the runner look at its job and the log again.
func (r *runner) WakeUp() {
	select {
	case r.wakeCh <- struct{}{}:
	default:
	}
}

// Renew passes a newer listing of the job on (RunNowAt) and has the
// runner look at it. A runner that runs an old definition or missed a
// pause cannot take it on: it reports false, and its successor waits for
// it, then reloads the job.
func (r *runner) Renew(w *herald.Work, _ bool) bool {
	// The Keeper renews right after e.lease, in the same goroutine: the
	// round is the one w was listed in.
	if r.defKey != definitionKey(w) || r.stale(w, r.e.round.Load()) {
		return false
	}
	r.latest.Store(w)
	r.WakeUp()
	return true
}

func (r *runner) now() time.Time { return r.e.opts.Now().UTC().Truncate(time.Microsecond) }

// Run runs the job until stopped, after waiting for its predecessor.
func (r *runner) Run() {
	defer close(r.done)
	defer r.closeWriter()
	if r.prev != nil {
		// The predecessor may be saving; what it saved is reloaded.
		select {
		case <-r.prev.done:
		case <-r.ctx.Done():
			return
		}
	}
	for {
		next, err := r.turn()
		switch {
		case errors.Is(err, errStop):
			return
		case err != nil && r.ctx.Err() == nil:
			r.e.metrics.storeErrors.Inc()
			r.log.Error("run work job", "err", err)
			next = r.now().Add(storePause)
		}
		if r.dirty && !r.now().Before(r.lastSave.Add(lazySaveInterval)) {
			if err := r.save(r.ctx, r.rt, "", "", nil, nil); errors.Is(err, errStop) {
				return
			}
		}
		if !r.sleep(next) {
			return
		}
	}
}

// turn does what is due and returns when to look again.
func (r *runner) turn() (time.Time, error) {
	if r.ctx.Err() != nil {
		return time.Time{}, nil
	}
	if !r.begun {
		if err := r.load(); err != nil {
			return time.Time{}, err
		}
		if err := r.begin(); err != nil {
			return time.Time{}, err
		}
	}
	if r.w.Kind == herald.WorkAlert {
		return r.alertTurn(r.ctx)
	}
	return r.exportTurn(r.ctx)
}

// sleep waits until next, a wake-up or at most PollInterval; false when
// the runner is stopped.
func (r *runner) sleep(next time.Time) bool {
	now := r.now()
	d := min(max(next.Sub(now), 0), r.e.opts.PollInterval)
	if r.dirty {
		d = min(d, max(r.lastSave.Add(lazySaveInterval).Sub(now), 0))
	}
	if d <= 0 {
		return r.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return false
	case <-r.wakeCh:
	case <-t.C:
	}
	return true
}

// load reads the job as stored: the listing that started the runner may
// predate its predecessor's last save. The definition stays the
// listing's, which the lease loop compares with later listings.
func (r *runner) load() error {
	w, err := r.e.store.FindWork(r.ctx, r.key.account, r.key.id)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND:
		return errStop
	case err != nil:
		return fmt.Errorf("load work %s: %w", r.key.id, err)
	case w.State != herald.WorkActive:
		return errStop
	}
	c := *r.w
	c.State, c.StateReason, c.Runtime = w.State, w.StateReason, w.Runtime
	if w.RunNowAt != nil && (c.RunNowAt == nil || w.RunNowAt.After(*c.RunNowAt)) {
		c.RunNowAt = w.RunNowAt
	}
	r.w, r.rt = &c, w.Runtime
	r.stream = streamReport{}
	if lc := r.rt.LastCycle; lc != nil {
		r.stream.lastAt = lc.FinishedAt
	}
	return nil
}

// begin writes started, the first time the job runs, and syncing when a
// series of cycles starts: Runtime.Syncing is false before the first run,
// and after the job was stopped, as the store resets it when a job is
// paused or fails (herald.Work.ChangeState) and as the engine does when a
// job fails or completes. A restart of the server or a takeover by another
// node goes on with the series, as does a runner restarted by a change of
// definition.
func (r *runner) begin() error {
	now := r.now()
	rt := cloneRuntime(r.rt)
	var events []*herald.Event
	if rt.StartedAt == nil {
		rt.StartedAt = &now
		ev, err := r.event(herald.VerbStarted, fmt.Sprintf("%s started", r.what()), nil)
		if err != nil {
			return err
		}
		events = append(events, ev)
	}
	if !rt.Syncing {
		rt.Syncing = true
		ev, err := r.event(herald.VerbSyncing, r.syncingNotes(), nil)
		if err != nil {
			return err
		}
		events = append(events, ev)
	}
	if x := r.w.Export; x != nil && x.Mode == herald.ExportBatch {
		next := r.nextRun(rt, now)
		rt.NextRunAt = &next
	}
	if err := r.save(r.ctx, rt, "", "", nil, events); err != nil {
		return err
	}
	r.begun = true
	// Read after the commit: a lease round numbered above this one
	// started after it, so its listing shows Syncing true unless the job
	// was stopped since.
	r.begunRound.Store(r.e.round.Load())
	return nil
}

// stale reports whether a listing of the job read in lease round round
// shows that it was stopped and resumed since the runner began: the store
// reset Runtime.Syncing, and the runner, which did not notice the pause,
// must start again to write syncing.
func (r *runner) stale(w *herald.Work, round int64) bool {
	begun := r.begunRound.Load()
	return !w.Runtime.Syncing && begun != 0 && begun < round
}

// save stores rt with a new state, records and system events in one
// commit; errStop when the store says the job is no longer ours to run.
func (r *runner) save(ctx context.Context, rt herald.WorkRuntime, state, reason string, records []*herald.WorkRecord, events []*herald.Event) error {
	p := &herald.WorkProgress{
		AccountID: r.key.account, WorkID: r.key.id, Owner: r.e.opts.Owner,
		Runtime: rt, State: state, StateReason: reason, Records: records, Events: events,
	}
	// A save is not abandoned when the runner is stopped: it records a
	// unit written or a message sent, which would otherwise go again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	if err := r.e.store.SaveWorkProgress(ctx, p); err != nil {
		switch herald.ErrorCode(err) {
		case herald.ECONFLICT, herald.ENOTFOUND:
			r.log.Debug("work job no longer runs here", "err", err)
			return errStop
		}
		return fmt.Errorf("save work %s: %w", r.key.id, err)
	}
	r.rt, r.dirty, r.lastSave = rt, false, r.now()
	if len(events) > 0 {
		r.e.wakeAccount(r.key.account, r)
	}
	return nil
}

// lazy keeps rt, whose changes may be lost (a crash reads the same events
// again and comes to the same state), to be saved within
// lazySaveInterval, so that events the job does not care about cost no
// commit each.
func (r *runner) lazy(rt herald.WorkRuntime) {
	r.rt, r.dirty = rt, true
}

// event builds a system event about the job.
func (r *runner) event(verb, notes string, fields map[string]any) (*herald.Event, error) {
	return herald.SystemEvent{
		AccountID: r.key.account, SubjectType: herald.SubjectWork, SubjectID: r.key.id,
		Verb: verb, By: herald.SystemActor, At: r.now(), Notes: notes, Fields: fields,
	}.Event()
}

// wanted reports whether the job acts on ev: its filter matches, and it
// is not one of the job's own system events (an export of work events
// would otherwise feed itself).
func (r *runner) wanted(ev *herald.Event) bool {
	if ev.Origin == herald.OriginSystem && ev.Category == herald.SubjectWork && ev.PrimaryID == r.key.id {
		return false
	}
	if !r.w.Filter.Match(ev) {
		return false
	}
	if x := r.w.Export; x != nil && x.Mode == herald.ExportOnce {
		if x.From != nil && ev.OccurredAt.Before(*x.From) {
			return false
		}
		if x.To != nil && !ev.OccurredAt.Before(*x.To) {
			return false
		}
	}
	return true
}

// filter returns the store query for events after seq, reading at most
// limit.
func (r *runner) filter(after int64, limit int) herald.EventFilter {
	f := herald.EventFilter{AfterSeq: after, Limit: limit}
	r.w.Filter.ApplyTo(&f)
	if x := r.w.Export; x != nil && x.Mode == herald.ExportOnce {
		if x.From != nil {
			f.OccurredAfter = *x.From
		}
		if x.To != nil {
			f.OccurredBefore = *x.To
		}
	}
	return f
}

// what names the job in notes.
func (r *runner) what() string {
	kind := "export"
	if r.w.Kind == herald.WorkAlert {
		kind = "alert"
	}
	if r.w.Name != "" {
		return fmt.Sprintf("%s %q", kind, r.w.Name)
	}
	return kind + " " + r.key.id
}

func (r *runner) syncingNotes() string {
	if a := r.w.Alert; a != nil {
		return fmt.Sprintf("%s watching for %s", r.what(), condition(a))
	}
	x := r.w.Export
	switch x.Mode {
	case herald.ExportOnce:
		return fmt.Sprintf("%s: one-time export to %s", r.what(), destination(&x.Destination))
	case herald.ExportBatch:
		every := "by cron " + x.Cron
		if x.Cron == "" {
			every = "every " + formatDuration(time.Duration(x.Every))
		}
		return fmt.Sprintf("%s: batch export %s to %s", r.what(), every, destination(&x.Destination))
	default:
		return fmt.Sprintf("%s: stream export to %s", r.what(), destination(&x.Destination))
	}
}

// destination describes where an export writes, without secrets.
func destination(d *herald.Destination) string {
	switch d.Type {
	case herald.DestinationFiles:
		return fmt.Sprintf("%s files in %s", d.Format, d.Dir)
	case herald.DestinationPostgres:
		return "table " + d.Table
	default:
		if u, err := url.Parse(d.URL); err == nil && u.Host != "" {
			return "webhook at " + u.Host
		}
		return "webhook"
	}
}

// errorText returns err as a record or system event keeps it: short, and
// without the job's secrets, which a driver may quote.
func (r *runner) errorText(err error) string {
	s := err.Error()
	var secrets []string
	if r.w.Secret != "" {
		secrets = append(secrets, r.w.Secret)
	}
	if x := r.w.Export; x != nil {
		if u, err := url.Parse(x.Destination.DSN); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				secrets = append(secrets, p)
			}
		}
		for _, v := range x.Destination.Headers {
			secrets = append(secrets, v)
		}
	}
	if a := r.w.Alert; a != nil {
		if a.Target.SMTP != nil {
			secrets = append(secrets, a.Target.SMTP.Password)
		}
		for _, v := range a.Target.Headers {
			secrets = append(secrets, v)
		}
	}
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, herald.Redacted)
		}
	}
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "…"
	}
	return s
}

func (r *runner) closeWriter() {
	if r.writer != nil {
		if err := r.writer.Close(); err != nil {
			r.log.Debug("close export writer", "err", err)
		}
		r.writer = nil
	}
}

// jitter spreads d by ±20%, so that jobs that failed together do not
// retry together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// cloneRuntime copies rt deeply enough to change the copy: the pointers
// a runner changes in place.
func cloneRuntime(rt herald.WorkRuntime) herald.WorkRuntime {
	if rt.Pending != nil {
		p := *rt.Pending
		rt.Pending = &p
	}
	if rt.Firing != nil {
		f := *rt.Firing
		rt.Firing = &f
	}
	rt.Recent = slices.Clone(rt.Recent)
	return rt
}

// formatDuration writes d without the zero units time.Duration.String
// adds: 1m, 1h30m, 90s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// plural writes n and noun, with an s unless n is 1.
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
