package work

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/export"
)

// maxDetails bounds the unit details a cycle's record lists.
const maxDetails = 100

// streamReport is what a stream export sent since it last wrote synced
// and synccomplete: a stream reports at most once per Every, and only
// when it sent something, so that exports and alerts on work events do
// not feed each other a system event per batch.
type streamReport struct {
	lastAt   time.Time // the last report (the last cycle record's end)
	since    time.Time // when the first unit not reported was written
	afterSeq int64
	units    int
	events   int64
	details  []any
}

// exportTurn runs the export's cycle under way, or starts one when it is
// due, and returns when to look again.
func (r *runner) exportTurn(ctx context.Context) (time.Time, error) {
	now := r.now()
	x := r.w.Export
	idle := now.Add(r.e.opts.PollInterval)
	rt := cloneRuntime(r.rt)
	saved := rt.Pending != nil // the range is stored: units may be written
	if p := rt.Pending; p != nil && p.NextAttemptAt.After(now) {
		return p.NextAttemptAt, nil
	}
	if rt.Pending == nil {
		var ranNow *time.Time
		switch x.Mode {
		case herald.ExportBatch:
			due := r.nextRun(rt, now)
			ranNow = r.runNowAt()
			if ranNow == nil && now.Before(due) {
				return due, nil
			}
		case herald.ExportStream:
			if due := r.streamReportDue(now); !due.IsZero() {
				if !now.Before(due) {
					return now, r.saveStreamReport(ctx, rt, now)
				}
				if due.Before(idle) {
					idle = due
				}
			}
		}
		upTo, err := r.e.store.LastSeq(ctx, r.key.account)
		if err != nil {
			return time.Time{}, fmt.Errorf("last seq of account %s: %w", r.key.account, err)
		}
		after := rt.Cursor
		if x.Mode == herald.ExportOnce {
			after = 0
		}
		if x.Mode == herald.ExportStream && upTo <= after {
			return idle, nil
		}
		rt.Pending = &herald.WorkCycle{Number: rt.Cycles + 1, AfterSeq: after, UpTo: upTo, Done: after, StartedAt: now}
		if ranNow != nil {
			rt.RanNowAt = ranNow
		}
		r.details = nil
	}
	for {
		p := rt.Pending
		events, last, err := r.nextUnit(ctx, p)
		if err != nil {
			return time.Time{}, err
		}
		if len(events) == 0 {
			p.Done = p.UpTo
			return r.endCycle(ctx, rt, saved, nil)
		}
		if !saved {
			// The range is stored before the first unit is written: a
			// crash after the write resumes with the same range, and
			// writes the same unit again, not a different one.
			if err := r.save(ctx, rt, "", "", nil, nil); err != nil {
				return time.Time{}, err
			}
			rt, saved = cloneRuntime(r.rt), true
			p = rt.Pending
		}
		detail, err := r.write(ctx, events)
		if err != nil {
			if ctx.Err() != nil {
				return time.Time{}, nil
			}
			return r.unitFailed(ctx, rt, err)
		}
		n := int64(len(events))
		from := p.Done
		p.Done, p.Units, p.Events = last, p.Units+1, p.Events+n
		p.Attempts, p.NextAttemptAt, p.LastError = 0, time.Time{}, ""
		rt.Units++
		rt.Events += n
		r.e.metrics.units.Inc()
		r.e.metrics.events.Add(float64(n))
		var unitDetail any = json.RawMessage(detail)
		if len(detail) == 0 || !json.Valid(detail) {
			unitDetail = nil
		}
		if len(r.details) < maxDetails {
			r.details = append(r.details, unitDetail)
		}
		var evs []*herald.Event
		if x.Mode == herald.ExportStream {
			r.stream.add(now, from, n, unitDetail)
		} else {
			ev, err := r.event(herald.VerbSynced, unitNotes(n, detail, &x.Destination), map[string]any{
				"unit": unitDetail, "events": n, "afterSeq": from, "upTo": last, "cycle": p.Number,
			})
			if err != nil {
				return time.Time{}, err
			}
			evs = append(evs, ev)
		}
		if last >= p.UpTo {
			return r.endCycle(ctx, rt, true, evs)
		}
		if err := r.save(ctx, rt, "", "", nil, evs); err != nil {
			return time.Time{}, err
		}
		rt = cloneRuntime(r.rt)
		now = r.now()
	}
}

// nextUnit reads the events of the next unit of p: at most BatchSize
// matching events after p.Done and up to p.UpTo, in seq order. last is
// the seq up to which the log was read for it (events the filter drops
// included), where the next unit starts; p.UpTo when the cycle has no
// more.
func (r *runner) nextUnit(ctx context.Context, p *herald.WorkCycle) (events []*herald.Event, last int64, err error) {
	batch := r.w.Export.BatchSize
	pos := p.Done
	for pos < p.UpTo && len(events) < batch {
		// Read about what the unit still needs: the store filters most
		// events out already, and a unit of one should not read a page.
		limit := min(max(2*(batch-len(events)), 10), r.e.opts.PageSize)
		list, err := r.e.store.FindEvents(ctx, r.key.account, r.filter(pos, limit))
		if err != nil {
			return nil, 0, fmt.Errorf("read events of account %s after %d: %w", r.key.account, pos, err)
		}
		for _, ev := range list {
			if ev.Seq > p.UpTo {
				// Beyond the cycle, even when it matches: the next cycle's.
				return events, p.UpTo, nil
			}
			pos = ev.Seq
			if r.wanted(ev) {
				events = append(events, ev)
				if len(events) == batch {
					return events, pos, nil
				}
			}
		}
		if len(list) < limit {
			// Nothing more is stored that the query selects: every event
			// up to UpTo, which was stored when the cycle started, is read.
			pos = p.UpTo
		}
	}
	return events, min(pos, p.UpTo), nil
}

// write writes one unit, opening the destination if needed.
func (r *runner) write(ctx context.Context, events []*herald.Event) (json.RawMessage, error) {
	if r.writer == nil {
		w, err := export.Open(ctx, r.w, r.e.opts.Export)
		if err != nil {
			return nil, err
		}
		r.writer = w
	}
	ctx, cancel := context.WithTimeout(ctx, r.e.opts.Timeout)
	defer cancel()
	detail, err := r.writer.Write(ctx, &export.Unit{Work: r.w, Events: events})
	if err != nil {
		// Start afresh at the retry: a broken connection is not reused.
		r.closeWriter()
		return nil, err
	}
	return detail, nil
}

// unitFailed schedules the failed unit's retry, or fails the job when its
// retry schedule is spent or the error is not worth retrying. A failed
// job keeps its cycle: resumed, it writes the unit again.
func (r *runner) unitFailed(ctx context.Context, rt herald.WorkRuntime, err error) (time.Time, error) {
	now := r.now()
	msg := r.errorText(err)
	p := rt.Pending
	schedule := r.w.Export.RetrySchedule
	if !export.IsPermanent(err) && p.Attempts < len(schedule) {
		p.Attempts++
		p.NextAttemptAt = now.Add(jitter(time.Duration(schedule[p.Attempts-1])))
		p.LastError = msg
		r.e.metrics.unitFailures.WithLabelValues("retry").Inc()
		r.log.Warn("export unit failed; will retry", "attempt", p.Attempts, "at", p.NextAttemptAt, "err", msg)
		if err := r.save(ctx, rt, "", "", nil, nil); err != nil {
			return time.Time{}, err
		}
		return p.NextAttemptAt, nil
	}
	r.e.metrics.unitFailures.WithLabelValues("final").Inc()
	r.e.metrics.cycles.WithLabelValues(herald.RecordFailed).Inc()
	attempts := p.Attempts + 1
	rec := &herald.WorkRecord{
		WorkID: r.key.id, Kind: herald.RecordCycle, Number: p.Number, State: herald.RecordFailed,
		StartedAt: p.StartedAt, FinishedAt: now, Events: p.Events, Units: p.Units,
		AfterSeq: p.AfterSeq, UpTo: p.UpTo, Attempts: attempts, Error: msg,
	}
	p.Attempts, p.NextAttemptAt, p.LastError = 0, time.Time{}, msg
	rt.Failures++
	rt.LastCycle = rec
	rt.Syncing = false
	ev, err := r.event(herald.VerbFailed, msg, map[string]any{
		"cycle": p.Number, "attempts": attempts, "afterSeq": p.Done, "upTo": p.UpTo,
	})
	if err != nil {
		return time.Time{}, err
	}
	r.log.Warn("export failed", "attempts", attempts, "err", msg)
	if err := r.save(ctx, rt, herald.WorkFailed, msg, []*herald.WorkRecord{rec}, []*herald.Event{ev}); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, errStop
}

// endCycle finishes the cycle of rt, whose units are all written: the
// cursor moves to its end, its record is written with synccomplete (and
// completed for a one-time export), together with evs, the last unit's
// synced. saved says whether the cycle was stored; a stream cycle that
// wrote nothing is kept lazily.
func (r *runner) endCycle(ctx context.Context, rt herald.WorkRuntime, saved bool, evs []*herald.Event) (time.Time, error) {
	now := r.now()
	x := r.w.Export
	p := rt.Pending
	rt.Pending = nil
	rt.Cursor = max(rt.Cursor, p.UpTo)
	if x.Mode == herald.ExportStream {
		if due := r.streamReportDue(now); due.IsZero() || now.Before(due) {
			if !saved && len(evs) == 0 {
				r.lazy(rt)
				return now, nil
			}
			if err := r.save(ctx, rt, "", "", nil, evs); err != nil {
				return time.Time{}, err
			}
			return now, nil
		}
		return now, r.saveStreamReport(ctx, rt, now)
	}
	rec := &herald.WorkRecord{
		WorkID: r.key.id, Kind: herald.RecordCycle, Number: p.Number, State: herald.RecordSucceeded,
		StartedAt: p.StartedAt, FinishedAt: now, Events: p.Events, Units: p.Units,
		AfterSeq: p.AfterSeq, UpTo: p.UpTo, Detail: detailsJSON(r.details),
	}
	rt.Cycles++
	rt.LastCycle = rec
	ev, err := r.event(herald.VerbSyncComplete, cycleNotes(p), map[string]any{
		"cycle": p.Number, "events": p.Events, "units": p.Units, "afterSeq": p.AfterSeq, "upTo": p.UpTo,
	})
	if err != nil {
		return time.Time{}, err
	}
	evs = append(evs, ev)
	state := ""
	next := now
	switch x.Mode {
	case herald.ExportOnce:
		state = herald.WorkCompleted
		rt.Syncing = false
		rt.NextRunAt = nil
		ev, err := r.event(herald.VerbCompleted, fmt.Sprintf("%s completed: %s in %s",
			r.what(), plural(p.Events, "event"), plural(int64(p.Units), "unit")), map[string]any{
			"events": p.Events, "units": p.Units,
		})
		if err != nil {
			return time.Time{}, err
		}
		evs = append(evs, ev)
	case herald.ExportBatch:
		next = r.nextRun(rt, now)
		rt.NextRunAt = &next
	}
	if err := r.save(ctx, rt, state, "", []*herald.WorkRecord{rec}, evs); err != nil {
		return time.Time{}, err
	}
	r.details = nil
	r.e.metrics.cycles.WithLabelValues(herald.RecordSucceeded).Inc()
	if state != "" {
		return time.Time{}, errStop
	}
	return next, nil
}

// nextRun returns when the batch export's next cycle is due: after the
// last cycle by its schedule, or, before any, at once (Every) or at the
// first cron time after the job was created, which stays the same however
// often the runner restarts.
func (r *runner) nextRun(rt herald.WorkRuntime, now time.Time) time.Time {
	x := r.w.Export
	var last time.Time
	if lc := rt.LastCycle; lc != nil && lc.Kind == herald.RecordCycle {
		last = lc.StartedAt
	} else if x.Cron != "" {
		last = r.w.CreatedAt
	}
	next := x.NextRun(last, now)
	if next.IsZero() {
		// A cron that no longer parses (validated on input, so only after
		// a change of the parser): try again later rather than spin.
		return now.Add(time.Hour)
	}
	return next
}

// runNowAt returns the RunNowAt a client set that no cycle ran for yet.
func (r *runner) runNowAt() *time.Time {
	at := r.latest.Load().RunNowAt
	if w := r.w.RunNowAt; w != nil && (at == nil || w.After(*at)) {
		at = w
	}
	if at == nil || (r.rt.RanNowAt != nil && !at.After(*r.rt.RanNowAt)) {
		return nil
	}
	t := *at
	return &t
}

func (s *streamReport) add(now time.Time, afterSeq, n int64, detail any) {
	if s.units == 0 {
		s.since, s.afterSeq = now, afterSeq
	}
	s.units++
	s.events += n
	if len(s.details) < maxDetails {
		s.details = append(s.details, detail)
	}
}

// streamReportDue returns when the stream reports what it sent, zero if
// it sent nothing since its last report.
func (r *runner) streamReportDue(now time.Time) time.Time {
	if r.stream.units == 0 {
		return time.Time{}
	}
	every := time.Duration(r.w.Export.Every)
	if every <= 0 {
		every = DefaultStreamEvery
	}
	if r.stream.lastAt.IsZero() {
		return now
	}
	return r.stream.lastAt.Add(every)
}

// saveStreamReport writes what the stream sent since its last report as
// one cycle: its record, synced and synccomplete.
func (r *runner) saveStreamReport(ctx context.Context, rt herald.WorkRuntime, now time.Time) error {
	s := r.stream
	x := r.w.Export
	rt.Cycles++
	rec := &herald.WorkRecord{
		WorkID: r.key.id, Kind: herald.RecordCycle, Number: rt.Cycles, State: herald.RecordSucceeded,
		StartedAt: s.since, FinishedAt: now, Events: s.events, Units: s.units,
		AfterSeq: s.afterSeq, UpTo: rt.Cursor, Detail: detailsJSON(s.details),
	}
	if rt.Pending != nil {
		rec.UpTo = rt.Pending.Done
	}
	rt.LastCycle = rec
	synced, err := r.event(herald.VerbSynced, fmt.Sprintf("sent %s in %s to %s",
		plural(s.events, "event"), plural(int64(s.units), "unit"), destination(&x.Destination)), map[string]any{
		"units": s.units, "events": s.events, "afterSeq": rec.AfterSeq, "upTo": rec.UpTo,
	})
	if err != nil {
		return err
	}
	done, err := r.event(herald.VerbSyncComplete, fmt.Sprintf("cycle %d: streamed %s in %s (seq %d to %d)",
		rec.Number, plural(s.events, "event"), plural(int64(s.units), "unit"), rec.AfterSeq+1, rec.UpTo), map[string]any{
		"cycle": rec.Number, "events": s.events, "units": s.units, "afterSeq": rec.AfterSeq, "upTo": rec.UpTo,
	})
	if err != nil {
		return err
	}
	if err := r.save(ctx, rt, "", "", []*herald.WorkRecord{rec}, []*herald.Event{synced, done}); err != nil {
		return err
	}
	r.e.metrics.cycles.WithLabelValues(herald.RecordSucceeded).Inc()
	r.stream = streamReport{lastAt: now}
	return nil
}

// unitNotes says what a unit wrote, from the writer's detail.
func unitNotes(n int64, detail json.RawMessage, d *herald.Destination) string {
	var v struct {
		File   string `json:"file"`
		Table  string `json:"table"`
		Status int    `json:"status"`
	}
	_ = json.Unmarshal(detail, &v)
	events := plural(n, "event")
	switch {
	case v.File != "":
		return fmt.Sprintf("wrote %s to %s", events, v.File)
	case v.Table != "":
		return fmt.Sprintf("wrote %s to table %s", events, v.Table)
	case v.Status != 0:
		host := "webhook"
		if u, err := url.Parse(d.URL); err == nil && u.Host != "" {
			host = u.Host
		}
		return fmt.Sprintf("sent %s to %s (status %d)", events, host, v.Status)
	}
	return fmt.Sprintf("wrote %s to %s", events, destination(d))
}

func cycleNotes(p *herald.WorkCycle) string {
	return fmt.Sprintf("cycle %d: exported %s in %s (seq %d to %d)",
		p.Number, plural(p.Events, "event"), plural(int64(p.Units), "unit"), p.AfterSeq+1, p.UpTo)
}

// detailsJSON lists unit details for a record; nil for none.
func detailsJSON(details []any) json.RawMessage {
	if len(details) == 0 {
		return nil
	}
	b, err := json.Marshal(map[string]any{"units": details})
	if err != nil {
		return nil
	}
	return b
}
