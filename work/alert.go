package work

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/notify"
)

// alertTurn sends the firing under way, or reads the matching events
// after the cursor until one fires the alert, and returns when to look
// again.
//
// The condition is evaluated on the events' receivedAt, not on the clock
// of the node that reads them: an alert that catches up after a restart
// comes to the same firings as one that kept up.
func (r *runner) alertTurn(ctx context.Context) (time.Time, error) {
	if r.rt.Firing != nil {
		return r.sendFiring(ctx)
	}
	now := r.now()
	idle := now.Add(r.e.opts.PollInterval)
	upTo, err := r.e.store.LastSeq(ctx, r.key.account)
	if err != nil {
		return time.Time{}, fmt.Errorf("last seq of account %s: %w", r.key.account, err)
	}
	if upTo <= r.rt.Cursor {
		return idle, nil
	}
	rt := cloneRuntime(r.rt)
	limit := r.e.opts.PageSize
	for rt.Cursor < upTo {
		list, err := r.e.store.FindEvents(ctx, r.key.account, r.filter(rt.Cursor, limit))
		if err != nil {
			return time.Time{}, fmt.Errorf("read events of account %s after %d: %w", r.key.account, rt.Cursor, err)
		}
		for _, ev := range list {
			rt.Cursor = ev.Seq
			if !r.wanted(ev) || !r.observe(&rt, ev) {
				continue
			}
			// The firing is stored, with the cursor at its event, before
			// the message goes: a crash sends it again rather than never.
			if err := r.save(ctx, rt, "", "", nil, nil); err != nil {
				return time.Time{}, err
			}
			return r.sendFiring(ctx)
		}
		if len(list) < limit {
			// Every event up to upTo that the query selects was read.
			rt.Cursor = max(rt.Cursor, upTo)
		}
	}
	r.lazy(rt)
	return idle, nil
}

// observe counts ev, a matching event, in the alert's window and reports
// whether it fires the alert (rt.Firing set).
func (r *runner) observe(rt *herald.WorkRuntime, ev *herald.Event) bool {
	a := r.w.Alert
	at := ev.ReceivedAt.UTC()
	window := time.Duration(a.Window)
	recent := rt.Recent[:0]
	for _, t := range rt.Recent {
		// No window (a threshold of 1 needs none): every event since the
		// last firing counts.
		if window <= 0 || t.After(at.Add(-window)) {
			recent = append(recent, t)
		}
	}
	recent = append(recent, at)
	if len(recent) > a.Threshold {
		recent = recent[len(recent)-a.Threshold:]
	}
	rt.Recent = recent
	if len(recent) < a.Threshold {
		return false
	}
	if last := rt.LastFiredAt; last != nil && at.Before(last.Add(time.Duration(a.Cooldown))) {
		rt.Suppressed++
		r.e.metrics.firings.WithLabelValues(firingSuppressed).Inc()
		return false
	}
	rt.Firing = &herald.AlertFiring{
		Number: rt.Firings + 1, At: at, EventID: ev.ID, Seq: ev.Seq, Count: len(recent),
	}
	return true
}

// sendFiring sends the stored firing's message, and records the outcome:
// synced once sent; after its retry schedule, failed, and the alert
// watches on.
func (r *runner) sendFiring(ctx context.Context) (time.Time, error) {
	now := r.now()
	a := r.w.Alert
	f := r.rt.Firing
	if f.NextAttemptAt.After(now) {
		return f.NextAttemptAt, nil
	}
	ev, err := r.firingEvent(ctx, f)
	if err != nil {
		return time.Time{}, err
	}
	msg, err := r.message(f, ev)
	if err != nil {
		return time.Time{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, r.e.opts.Timeout)
	res, sendErr := r.e.sender.Send(sctx, a.Target, msg)
	cancel()
	if sendErr != nil && ctx.Err() != nil {
		// Stopped: the firing stays stored and is sent again later.
		return time.Time{}, nil
	}
	now = r.now()
	rt := cloneRuntime(r.rt)
	f = rt.Firing
	attempts := f.Attempts + 1
	rec := &herald.WorkRecord{
		WorkID: r.key.id, Kind: herald.RecordFiring, Number: f.Number,
		StartedAt: f.At, FinishedAt: now, Events: int64(f.Count), Attempts: attempts,
	}
	if sendErr == nil {
		rec.State = herald.RecordSucceeded
		if res != nil && len(res.Output) > 0 && json.Valid(res.Output) {
			rec.Detail = res.Output
		}
		done, err := r.event(herald.VerbSynced, fmt.Sprintf("alert fired: %s; sent by %s",
			countText(f.Count, a), a.Target.Kind), map[string]any{
			"firing": f.Number, "count": f.Count, "eventId": f.EventID, "attempts": attempts, "detail": rec.Detail,
		})
		if err != nil {
			return time.Time{}, err
		}
		r.finishFiring(&rt, rec)
		if err := r.save(ctx, rt, "", "", []*herald.WorkRecord{rec}, []*herald.Event{done}); err != nil {
			return time.Time{}, err
		}
		r.e.metrics.firings.WithLabelValues(firingSent).Inc()
		return now, nil
	}
	text := r.errorText(sendErr)
	schedule := a.RetrySchedule
	if !notify.IsPermanent(sendErr) && f.Attempts < len(schedule) {
		f.Attempts = attempts
		wait := jitter(time.Duration(schedule[attempts-1]))
		if res != nil && res.RetryAfter > wait {
			wait = res.RetryAfter
		}
		f.NextAttemptAt, f.LastError = now.Add(wait), text
		r.log.Warn("alert message failed; will retry", "firing", f.Number, "attempt", attempts, "at", f.NextAttemptAt, "err", text)
		if err := r.save(ctx, rt, "", "", nil, nil); err != nil {
			return time.Time{}, err
		}
		r.e.metrics.firings.WithLabelValues(firingRetry).Inc()
		return f.NextAttemptAt, nil
	}
	rec.State, rec.Error = herald.RecordFailed, text
	failed, err := r.event(herald.VerbFailed, fmt.Sprintf("alert could not be sent by %s after %s: %s",
		a.Target.Kind, plural(int64(attempts), "attempt"), text), map[string]any{
		"firing": f.Number, "count": f.Count, "eventId": f.EventID, "attempts": attempts,
	})
	if err != nil {
		return time.Time{}, err
	}
	r.log.Warn("alert message failed", "firing", f.Number, "attempts", attempts, "err", text)
	rt.Failures++
	r.finishFiring(&rt, rec)
	if err := r.save(ctx, rt, "", "", []*herald.WorkRecord{rec}, []*herald.Event{failed}); err != nil {
		return time.Time{}, err
	}
	r.e.metrics.firings.WithLabelValues(firingFailed).Inc()
	return now, nil
}

// finishFiring ends the firing of rt, sent or given up: its events are
// spent and the cooldown starts, so that a target that cannot be reached
// is not tried again on every event.
func (r *runner) finishFiring(rt *herald.WorkRuntime, rec *herald.WorkRecord) {
	at := rt.Firing.At
	rt.Firings++
	rt.LastFiredAt = &at
	rt.Recent = nil
	rt.Firing = nil
	rt.LastCycle = rec
}

// firingEvent loads the event that fired the alert; nil if it is no
// longer stored (the message goes without it).
func (r *runner) firingEvent(ctx context.Context, f *herald.AlertFiring) (*herald.Event, error) {
	list, err := r.e.store.FindEvents(ctx, r.key.account, herald.EventFilter{AfterSeq: f.Seq - 1, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("read event %s of account %s: %w", f.EventID, r.key.account, err)
	}
	if len(list) == 0 || list[0].Seq != f.Seq || list[0].ID != f.EventID {
		return nil, nil
	}
	return list[0], nil
}

// message builds the firing's message: the target's template sees the
// event as `event` and the alert as `alert`; without one, these defaults
// are sent.
func (r *runner) message(f *herald.AlertFiring, ev *herald.Event) (*notify.Message, error) {
	a := r.w.Alert
	name := r.w.Name
	if name == "" {
		name = r.key.id
	}
	alert, err := json.Marshal(map[string]any{
		"id": r.key.id, "name": name, "count": f.Count, "threshold": a.Threshold,
		"window": a.Window, "firedAt": f.At,
	})
	if err != nil {
		return nil, fmt.Errorf("encode alert %s: %w", r.key.id, err)
	}
	var body json.RawMessage = []byte("null")
	last := ""
	if ev != nil {
		body = ev.Body
		if len(body) == 0 {
			if body, err = herald.MarshalEvent(ev); err != nil {
				return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
			}
		}
		last = fmt.Sprintf(" (last: %s/%s %s)", ev.Category, ev.Type, ev.ID)
	}
	defaultBody, err := json.Marshal(map[string]json.RawMessage{"alert": alert, "event": body})
	if err != nil {
		return nil, fmt.Errorf("encode alert %s: %w", r.key.id, err)
	}
	m := &notify.Message{
		ID:      r.key.id + "-f" + strconv.FormatInt(f.Number, 10),
		Event:   ev,
		Vars:    delivery.Vars{Alert: alert},
		Body:    defaultBody,
		Subject: "Herald alert: " + name,
		Text:    fmt.Sprintf("%s: %s%s", name, countText(f.Count, a), last),
	}
	if r.w.Secret != "" {
		m.Secrets = []string{r.w.Secret}
	}
	return m, nil
}

// countText says how many matching events fired the alert.
func countText(n int, a *herald.AlertConfig) string {
	s := plural(int64(n), "matching event")
	if a.Window > 0 {
		s += " within " + formatDuration(time.Duration(a.Window))
	}
	return s
}

// condition describes when the alert fires.
func condition(a *herald.AlertConfig) string {
	s := countText(a.Threshold, a)
	if a.Cooldown > 0 {
		s += ", then quiet for " + formatDuration(time.Duration(a.Cooldown))
	}
	return s
}
