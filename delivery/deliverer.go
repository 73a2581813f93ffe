package delivery

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
)

// Limits of a deliverer.
const (
	// maxPagesPerTurn bounds the log pages read between looks at the
	// results, so that a long run of events the filter drops does not
	// hold results up.
	maxPagesPerTurn = 4
	// maxBatch is how many attempts and messages wait to be saved before
	// the deliverer stops sending until a save succeeds.
	maxBatch = 4096
	// flushBatch is the batch size that is saved without waiting for
	// FlushInterval.
	flushBatch = 512
	// cursorSaveInterval spaces the saves that only move the cursor past
	// events the filter dropped.
	cursorSaveInterval = time.Second
	// storePause is the wait after a failed read or save of the store.
	storePause = time.Second
	// maxDueTimes bounds the next-attempt times a deliverer remembers to
	// wake at; past it, the poll finds the due messages.
	maxDueTimes = 100000
	// maxErrorText is how much of an error an attempt keeps.
	maxErrorText = 1024
	// messagePage is the page size when loading pending messages.
	messagePage = 1000
)

// deliverer delivers one subscription: a loop that owns all its state and
// sends requests from goroutines of their own, at most MaxInFlight at once.
type deliverer struct {
	e           *Engine
	accountID   string
	id          string
	cfg         atomic.Pointer[herald.Subscription]
	ordered     bool
	maxInFlight int
	prev        *deliverer
	log         *slog.Logger

	ctx       context.Context
	cancel    context.CancelFunc
	reqCtx    context.Context // requests under way; cancelled at shutdown
	reqCancel context.CancelFunc
	done      chan struct{}
	wakeCh    chan struct{} // new events
	pokeCh    chan struct{} // due messages, secrets
	results   chan *outcome

	// finalCursor and finalFailing are what a successor goes on from; set
	// before done is closed.
	finalCursor  int64
	finalFailing *time.Time

	// The loop's state.
	cursor        int64 // saved
	readSeq       int64 // every event up to it was read
	caughtUp      bool  // the last read found no more events
	queue         []*herald.Event
	firsts        seqWindow // first attempts under way
	inflight      int
	inflightRetry map[int64]bool
	inflightKeys  map[string]int
	pendingKeys   map[string]int   // ordered: messages not dead, by order key
	pendingSeqs   map[int64]string // ordered: their seqs
	pendingCount  int              // messages retrying or waiting
	batch         herald.DeliveryProgress
	batchSince    time.Time // when the batch got its first item
	failingSince  *time.Time
	dueTimes      timeHeap
	dueNow        bool
	nextPoll      time.Time
	lastSave      time.Time
	pauseUntil    time.Time
	limitWait     time.Duration
	limiter       limiter
	signer        *Signer
	signerAt      time.Time
	tmplText      string
	tmpl          *Template
	tmplErr       error
	disableReason string
	fatal         error

	mDelivered, mFailed, mFinal prometheus.Counter
	mLatency                    prometheus.Observer
	mBacklog                    prometheus.Gauge
}

// job is one request to make.
type job struct {
	ev      *herald.Event   // a first attempt; nil for a retry
	msg     *herald.Message // a retry
	seq     int64
	eventID string
	key     string // order key, ordered mode only
	number  int

	url     string
	headers map[string]string
	timeout time.Duration
	signer  *Signer
	tmpl    *Template
	tmplErr error
}

// outcome is a job done.
type outcome struct {
	job *job
	at  time.Time
	res *Result
	// aborted: the request was abandoned (shutdown) or the event could
	// not be read; nothing is recorded and it is sent again later.
	aborted  bool
	storeErr error
	// gone: the event is no longer stored.
	gone bool
}

// newDeliverer returns the deliverer of s, not yet running; prev, if
// any, is its predecessor (lease.Config.New).
func (e *Engine) newDeliverer(s *herald.Subscription, prev *deliverer) *deliverer {
	ctx, cancel := context.WithCancel(e.ctx)
	// Requests outlive a stop for a grace period (shutdown).
	reqCtx, reqCancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &deliverer{
		e:             e,
		accountID:     s.AccountID,
		id:            s.ID,
		ordered:       s.Ordered,
		maxInFlight:   s.MaxInFlight,
		prev:          prev,
		log:           e.opts.Logger.With("account", s.AccountID, "subscription", s.ID),
		ctx:           ctx,
		cancel:        cancel,
		reqCtx:        reqCtx,
		reqCancel:     reqCancel,
		done:          make(chan struct{}),
		wakeCh:        make(chan struct{}, 1),
		pokeCh:        make(chan struct{}, 1),
		results:       make(chan *outcome, s.MaxInFlight),
		cursor:        s.Cursor,
		failingSince:  s.FailingSince,
		inflightRetry: make(map[int64]bool),
		inflightKeys:  make(map[string]int),
		pendingKeys:   make(map[string]int),
		pendingSeqs:   make(map[int64]string),
		firsts:        seqWindow{done: make(map[int64]bool)},
	}
	d.cfg.Store(s)
	m := e.metrics
	d.mDelivered = m.deliveries.WithLabelValues(s.AccountID, s.ID, herald.AttemptDelivered)
	d.mFailed = m.deliveries.WithLabelValues(s.AccountID, s.ID, herald.AttemptFailed)
	d.mFinal = m.deliveries.WithLabelValues(s.AccountID, s.ID, herald.AttemptFinal)
	d.mLatency = m.latency.WithLabelValues(s.AccountID, s.ID)
	d.mBacklog = m.backlog.WithLabelValues(s.AccountID, s.ID)
	return d
}

// Stop asks the deliverer to stop: requests under way get ShutdownGrace
// to finish, and what was done is saved.
func (d *deliverer) Stop() { d.cancel() }

// exited reports whether the deliverer has stopped and saved.
func (d *deliverer) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// WakeUp tells the deliverer that there are new events.
func (d *deliverer) WakeUp() {
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

// poke has the deliverer look for due messages and reload its secrets.
func (d *deliverer) poke() {
	select {
	case d.pokeCh <- struct{}{}:
	default:
	}
}

// Renew gives the deliverer s's current settings (URL, headers, template,
// filter, schedule, limits); they apply to the next requests. refreshed
// also pokes it. A change of ordering or window it cannot take on: it
// reports false, to be replaced.
func (d *deliverer) Renew(s *herald.Subscription, refreshed bool) bool {
	if s.Ordered != d.ordered || s.MaxInFlight != d.maxInFlight {
		return false
	}
	d.cfg.Store(s)
	if refreshed {
		d.poke()
	}
	return true
}

func (d *deliverer) now() time.Time { return d.e.opts.Now() }

// Run delivers until stopped, after waiting for its predecessor.
func (d *deliverer) Run() {
	defer close(d.done)
	defer d.cancel()
	if d.prev != nil {
		select {
		case <-d.prev.done:
			d.cursor = max(d.cursor, d.prev.finalCursor)
			if d.prev.fatal == nil {
				// Newer than the lease's copy, unless another node
				// delivered meanwhile.
				d.failingSince = d.prev.finalFailing
			}
		case <-d.ctx.Done():
			d.finalCursor, d.finalFailing = d.cursor, d.failingSince
			return
		}
		d.prev = nil
	}
	d.readSeq = d.cursor
	if d.init() {
		d.loop()
	}
	d.shutdown()
}

// init loads the messages still to send, with their order keys.
func (d *deliverer) init() bool {
	for {
		err := d.loadPending()
		if err == nil {
			d.dueNow = true
			d.nextPoll = time.Now().Add(d.e.opts.PollInterval)
			return true
		}
		d.storeError("load pending messages", err)
		select {
		case <-d.ctx.Done():
			return false
		case <-time.After(storePause):
		}
	}
}

func (d *deliverer) loadPending() error {
	d.pendingCount = 0
	clear(d.pendingKeys)
	clear(d.pendingSeqs)
	for _, state := range []string{herald.MessageRetrying, herald.MessageWaiting} {
		after := int64(0)
		for {
			ms, err := d.e.store.FindMessages(d.ctx, d.accountID, d.id, herald.MessageFilter{State: state, AfterSeq: after, Limit: messagePage})
			if err != nil {
				return err
			}
			for _, m := range ms {
				d.addPending(m.Seq, m.OrderKey)
				after = m.Seq
			}
			if len(ms) < messagePage {
				break
			}
		}
	}
	return nil
}

func (d *deliverer) loop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.drain()
		if d.fatal != nil || d.disableReason != "" || d.ctx.Err() != nil {
			return
		}
		d.dispatch()
		if d.batchSince.IsZero() && !d.batchEmpty() {
			d.batchSince = time.Now()
		}
		d.flushIfDue()
		if d.fatal != nil {
			return
		}
		d.mBacklog.Set(float64(d.pendingCount + len(d.queue) + d.firsts.len()))
		timer.Reset(d.nextWake())
		select {
		case o := <-d.results:
			d.handle(o)
		case <-d.wakeCh:
			d.caughtUp = false
		case <-d.pokeCh:
			d.caughtUp, d.dueNow, d.signerAt = false, true, time.Time{}
		case <-timer.C:
		case <-d.ctx.Done():
			return
		}
		if now := time.Now(); !now.Before(d.nextPoll) {
			d.caughtUp, d.dueNow = false, true
			d.nextPoll = now.Add(d.e.opts.PollInterval)
		}
	}
}

// drain handles the results that are in.
func (d *deliverer) drain() {
	for {
		select {
		case o := <-d.results:
			d.handle(o)
		default:
			return
		}
	}
}

// nextWake is how long the loop may sleep when nothing comes in.
func (d *deliverer) nextWake() time.Duration {
	now := time.Now()
	w := d.nextPoll.Sub(now)
	if now.Before(d.pauseUntil) {
		return max(min(w, d.pauseUntil.Sub(now)), 0)
	}
	if d.inflight < d.maxInFlight {
		if !d.caughtUp && len(d.queue) == 0 {
			return 0 // more of the log to read
		}
		if t, ok := d.dueTimes.top(); ok {
			w = min(w, t.Sub(d.now()))
		}
		if d.limitWait > 0 {
			w = min(w, d.limitWait)
		}
	}
	if !d.batchSince.IsZero() {
		w = min(w, d.batchSince.Add(d.e.opts.FlushInterval).Sub(now))
	} else if d.cursorDirty() {
		w = min(w, d.lastSave.Add(cursorSaveInterval).Sub(now))
	}
	return max(w, 0)
}

func (d *deliverer) paused() bool { return time.Now().Before(d.pauseUntil) }

func (d *deliverer) storeError(what string, err error) {
	d.pauseUntil = time.Now().Add(storePause)
	if d.ctx.Err() != nil {
		return
	}
	d.e.metrics.storeErrors.Inc()
	d.log.Error("delivery store error", "op", what, "err", err)
}

// dispatch sends what is due and what is new, as the window allows.
func (d *deliverer) dispatch() {
	d.limitWait = 0
	if d.paused() || len(d.batch.Attempts)+len(d.batch.Messages) >= maxBatch {
		return
	}
	cfg := d.cfg.Load()
	d.limiter.set(cfg.RateLimit)
	if !d.loadSigner() {
		return
	}
	d.sendDue(cfg)
	d.sendNew(cfg)
}

func (d *deliverer) loadSigner() bool {
	if d.signer != nil && time.Since(d.signerAt) < d.e.opts.LeaseTTL/3 {
		return true
	}
	secrets, err := d.e.store.FindSigningSecrets(d.ctx, d.accountID, d.id)
	if err == nil {
		list := make([]string, len(secrets))
		for i, s := range secrets {
			list[i] = s.Secret
		}
		var s *Signer
		if s, err = NewSigner(list); err == nil {
			d.signer, d.signerAt = s, time.Now()
			return true
		}
	}
	if d.signer != nil {
		// Keep signing with the secrets known; try again later.
		d.signerAt = time.Now()
		d.log.Error("reload signing secrets", "err", err)
		return true
	}
	d.storeError("load signing secrets", err)
	return false
}

func (d *deliverer) dueWanted() bool {
	if d.dueNow {
		return true
	}
	t, ok := d.dueTimes.top()
	return ok && !t.After(d.now())
}

// sendDue sends the messages whose time came.
func (d *deliverer) sendDue(cfg *herald.Subscription) {
	free := d.maxInFlight - d.inflight
	if free <= 0 || !d.dueWanted() {
		return
	}
	// What is due must be asked of the store after it has everything
	// this deliverer did: a message saved as waiting becomes due when
	// the one before it is saved as delivered.
	if !d.flush() {
		return
	}
	now := d.now()
	// Messages already under way, or held back by one under way of
	// their key, come back too: ask for enough to fill the window anyway.
	limit := free + d.inflight
	ms, err := d.e.store.DueMessages(d.ctx, d.accountID, d.id, now, limit)
	if err != nil {
		d.storeError("find due messages", err)
		return
	}
	d.dueNow = len(ms) >= limit
	d.dueTimes.popUntil(now)
	for _, m := range ms {
		if d.inflight >= d.maxInFlight {
			d.dueNow = true
			break
		}
		if d.inflightRetry[m.Seq] || d.inflightKeys[m.OrderKey] > 0 && m.OrderKey != "" {
			continue
		}
		if _, known := d.pendingSeqs[m.Seq]; !known && d.ordered && m.OrderKey != "" {
			// Retried by hand since this deliverer started.
			d.addPending(m.Seq, m.OrderKey)
		}
		if w := d.limiter.take(time.Now()); w > 0 {
			d.limitWait, d.dueNow = w, true
			break
		}
		d.launch(&job{msg: m, seq: m.Seq, eventID: m.EventID, key: m.OrderKey, number: m.Attempts + 1}, cfg)
	}
}

// sendNew reads the log after the cursor and sends what matches.
func (d *deliverer) sendNew(cfg *herald.Subscription) {
	pages := 0
	for d.inflight < d.maxInFlight {
		if len(d.queue) == 0 {
			if d.caughtUp || pages >= maxPagesPerTurn || !d.read(cfg) {
				return
			}
			pages++
			continue
		}
		ev := d.queue[0]
		key := ""
		if d.ordered {
			key = orderKey(ev)
		}
		if key != "" && (d.inflightKeys[key] > 0 || d.pendingKeys[key] > 0) {
			// An earlier event of the key is under way or pending: this
			// one waits for its turn, kept by the store.
			d.queue = d.queue[1:]
			d.addWaiting(ev, key)
			continue
		}
		if w := d.limiter.take(time.Now()); w > 0 {
			d.limitWait = w
			return
		}
		d.queue = d.queue[1:]
		d.firsts.push(ev.Seq)
		d.launch(&job{ev: ev, seq: ev.Seq, eventID: ev.ID, key: key, number: 1}, cfg)
	}
}

// read reads one page of the log after readSeq into the queue.
func (d *deliverer) read(cfg *herald.Subscription) bool {
	f := herald.EventFilter{AfterSeq: d.readSeq, Limit: d.e.opts.PageSize}
	cfg.Filter.ApplyTo(&f)
	evs, err := d.e.store.FindEvents(d.ctx, d.accountID, f)
	if err != nil {
		d.storeError("read events", err)
		return false
	}
	d.queue = d.queue[:0]
	for _, ev := range evs {
		d.readSeq = max(d.readSeq, ev.Seq)
		if cfg.Filter.Match(ev) {
			d.queue = append(d.queue, ev)
		}
	}
	d.caughtUp = len(evs) < d.e.opts.PageSize
	return true
}

// orderKey is what ordered mode keeps in order: the lifecycle, else the
// entity.
func orderKey(ev *herald.Event) string {
	if ev.EventLifecycleID != "" {
		return "lifecycle:" + ev.EventLifecycleID
	}
	if id := ev.EntityID(); id != "" {
		return "entity:" + id
	}
	return ""
}

func (d *deliverer) addWaiting(ev *herald.Event, key string) {
	now := d.now()
	d.batch.Messages = append(d.batch.Messages, &herald.Message{
		AccountID: d.accountID, SubscriptionID: d.id, EventID: ev.ID, Seq: ev.Seq, OrderKey: key,
		State: herald.MessageWaiting, CreatedAt: now, UpdatedAt: now,
	})
	d.addPending(ev.Seq, key)
}

func (d *deliverer) addPending(seq int64, key string) {
	d.pendingCount++
	if d.ordered && key != "" {
		if _, ok := d.pendingSeqs[seq]; !ok {
			d.pendingSeqs[seq] = key
			d.pendingKeys[key]++
		}
	}
}

func (d *deliverer) forgetPending(seq int64, key string) {
	d.pendingCount = max(d.pendingCount-1, 0)
	if _, ok := d.pendingSeqs[seq]; ok {
		delete(d.pendingSeqs, seq)
		if d.pendingKeys[key]--; d.pendingKeys[key] <= 0 {
			delete(d.pendingKeys, key)
		}
	}
}

// launch starts j's request with the settings of cfg.
func (d *deliverer) launch(j *job, cfg *herald.Subscription) {
	j.url, j.headers, j.timeout, j.signer = cfg.URL, cfg.Headers, time.Duration(cfg.Timeout), d.signer
	if cfg.JSONTemplate != "" {
		if cfg.JSONTemplate != d.tmplText {
			d.tmplText = cfg.JSONTemplate
			d.tmpl, d.tmplErr = d.e.templates.Compile(cfg.JSONTemplate)
		}
		j.tmpl, j.tmplErr = d.tmpl, d.tmplErr
	}
	d.inflight++
	if j.msg != nil {
		d.inflightRetry[j.seq] = true
	}
	if j.key != "" {
		d.inflightKeys[j.key]++
	}
	go d.send(j)
}

// send makes j's request; it runs on its own goroutine and always hands
// one outcome back (the results channel has room for the whole window).
func (d *deliverer) send(j *job) {
	o := &outcome{job: j, at: d.now()}
	defer func() { d.results <- o }()
	ev := j.ev
	if ev == nil {
		evs, err := d.e.store.FindEvents(d.reqCtx, d.accountID, herald.EventFilter{AfterSeq: j.seq - 1, Limit: 1})
		switch {
		case err != nil:
			o.aborted, o.storeErr = true, fmt.Errorf("read event %s: %w", j.eventID, err)
			return
		case len(evs) == 0 || evs[0].Seq != j.seq || evs[0].ID != j.eventID:
			o.gone = true
			o.res = &Result{Err: fmt.Errorf("event %s (seq %d) is no longer stored", j.eventID, j.seq)}
			return
		}
		ev = evs[0]
	}
	body := []byte(ev.Body)
	switch {
	case j.tmplErr != nil:
		o.res = &Result{Err: j.tmplErr}
		return
	case j.tmpl != nil:
		var err error
		if body, err = j.tmpl.Render(ev); err != nil {
			o.res = &Result{Err: err}
			return
		}
	case len(body) == 0:
		var err error
		if body, err = herald.MarshalEvent(ev); err != nil {
			o.res = &Result{Err: fmt.Errorf("encode event: %w", err)}
			return
		}
	}
	o.res = d.e.client.Send(d.reqCtx, &Request{
		URL: j.url, Headers: j.headers, ID: ev.ID, Body: body,
		Signer: j.signer, At: o.at, Timeout: j.timeout,
	}, d.e.opts.Now)
	if o.res.StatusCode == 0 && d.reqCtx.Err() != nil {
		o.aborted = true
	}
}

// handle records an outcome in the batch and decides what becomes of
// the message.
func (d *deliverer) handle(o *outcome) {
	j := o.job
	d.inflight--
	if j.msg != nil {
		delete(d.inflightRetry, j.seq)
	}
	if j.key != "" {
		if d.inflightKeys[j.key]--; d.inflightKeys[j.key] <= 0 {
			delete(d.inflightKeys, j.key)
		}
	}
	if o.aborted {
		// A first attempt stays unfinished, so the cursor stays before it.
		if o.storeErr != nil {
			d.storeError("read event to retry", o.storeErr)
		}
		return
	}
	now := d.now()
	res := o.res
	verdict := res.Verdict()
	if o.gone {
		verdict = Final
	}
	att := &herald.Attempt{
		AccountID: d.accountID, SubscriptionID: d.id, EventID: j.eventID, Seq: j.seq,
		Number: j.number, At: o.at, StatusCode: res.StatusCode,
		LatencyMicros: res.Latency.Microseconds(), Response: res.Response,
	}
	if res.Err != nil {
		att.Error = clip(res.Err.Error(), maxErrorText)
	}
	if res.StatusCode != 0 {
		d.mLatency.Observe(res.Latency.Seconds())
	}
	cfg := d.cfg.Load()
	if verdict == Delivered {
		att.Outcome = herald.AttemptDelivered
		d.mDelivered.Inc()
		if j.msg != nil {
			d.batch.Done = append(d.batch.Done, j.seq)
			d.forgetPending(j.seq, j.key)
		}
		d.succeeded()
	} else {
		var m *herald.Message
		if j.msg != nil {
			c := *j.msg
			m = &c
		} else {
			m = &herald.Message{
				AccountID: d.accountID, SubscriptionID: d.id, EventID: j.eventID, Seq: j.seq,
				OrderKey: j.key, CreatedAt: now,
			}
		}
		m.Attempts, m.LastStatus, m.LastError, m.UpdatedAt = j.number, res.StatusCode, att.Error, now
		schedule := cfg.RetrySchedule
		if verdict != Retry || j.number > len(schedule) {
			att.Outcome = herald.AttemptFinal
			d.mFinal.Inc()
			m.State, m.NextAttemptAt = herald.MessageDead, time.Time{}
			if j.msg != nil {
				d.forgetPending(j.seq, j.key)
			}
		} else {
			att.Outcome = herald.AttemptFailed
			d.mFailed.Inc()
			m.State = herald.MessageRetrying
			m.NextAttemptAt = now.Add(retryWait(time.Duration(schedule[j.number-1]), res))
			if j.msg == nil {
				d.addPending(j.seq, j.key)
			}
			d.dueTimes.add(m.NextAttemptAt)
		}
		d.batch.Messages = append(d.batch.Messages, m)
		d.failed(now, cfg)
		if verdict == Gone && d.disableReason == "" {
			d.disableReason = "endpoint answered 410 Gone"
		}
	}
	d.batch.Attempts = append(d.batch.Attempts, att)
	if j.msg == nil {
		d.firsts.markDone(j.seq)
	}
	if j.key != "" && d.pendingKeys[j.key] > 0 && d.inflightKeys[j.key] == 0 {
		// The next message of the key may go now (or after its retry).
		d.dueNow = true
	}
}

// retryWait is the wait before the next attempt: what a 429 or 503 asked
// for, else the schedule's, with up to 20 % of jitter either way.
func retryWait(scheduled time.Duration, res *Result) time.Duration {
	if res.HasRetryAfter {
		return res.RetryAfter
	}
	return time.Duration(float64(scheduled) * (0.8 + 0.4*rand.Float64()))
}

// succeeded notes a delivery: a failing subscription recovers.
func (d *deliverer) succeeded() {
	if d.failingSince == nil {
		return
	}
	d.failingSince = nil
	if d.batch.FailingSince != nil {
		// The failure was not saved yet: the store never knew.
		d.batch.FailingSince = nil
	} else {
		d.batch.ClearFailing = true
	}
}

// failed notes a failure: the first after a success starts the failing
// time, and one past DisableAfter disables the subscription.
func (d *deliverer) failed(now time.Time, cfg *herald.Subscription) {
	if d.failingSince == nil {
		if d.batch.ClearFailing {
			// Recovery and a new failure cannot share one save.
			d.flush()
			d.batch.ClearFailing = false
		}
		t := now
		d.failingSince, d.batch.FailingSince = &t, &t
	}
	if limit := time.Duration(cfg.DisableAfter); limit > 0 && now.Sub(*d.failingSince) > limit && d.disableReason == "" {
		d.disableReason = fmt.Sprintf("deliveries failing since %s, longer than %s",
			d.failingSince.UTC().Format(time.RFC3339), limit)
	}
}

// cursorAt is the cursor the batch may save: before the first event not
// yet finished or saved as a message.
func (d *deliverer) cursorAt() int64 {
	if s, ok := d.firsts.front(); ok {
		return s - 1
	}
	if len(d.queue) > 0 {
		return d.queue[0].Seq - 1
	}
	return d.readSeq
}

func (d *deliverer) batchEmpty() bool {
	p := &d.batch
	return len(p.Attempts) == 0 && len(p.Messages) == 0 && len(p.Done) == 0 && p.FailingSince == nil && !p.ClearFailing
}

func (d *deliverer) cursorDirty() bool { return d.cursorAt() > d.cursor }

// flushIfDue saves the batch when nothing more is under way, when it is
// large, or when its first item has waited FlushInterval: under load one
// commit records many results, and a result is recorded soon all the
// same. (The requests do not wait for the commit, only the record.)
func (d *deliverer) flushIfDue() {
	if d.paused() {
		return
	}
	switch {
	case !d.batchEmpty():
		if d.inflight == 0 || len(d.batch.Attempts)+len(d.batch.Messages) >= flushBatch ||
			time.Since(d.batchSince) >= d.e.opts.FlushInterval {
			d.flush()
		}
	case d.cursorDirty() && time.Since(d.lastSave) >= cursorSaveInterval:
		d.flush()
	}
}

// flush saves the batch and the cursor in one commit; false if it could
// not (the batch is kept for the next try).
func (d *deliverer) flush() bool {
	if d.fatal != nil {
		return false
	}
	cursor := d.cursorAt()
	if d.batchEmpty() && cursor <= d.cursor {
		return true
	}
	p := &d.batch
	p.AccountID, p.SubscriptionID, p.Owner = d.accountID, d.id, d.e.opts.Owner
	p.Cursor = 0
	if cursor > d.cursor {
		p.Cursor = cursor
	}
	ctx := d.ctx
	if ctx.Err() != nil {
		// Shutting down: save what was done all the same.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
	}
	if err := d.e.store.SaveDelivery(ctx, p); err != nil {
		switch herald.ErrorCode(err) {
		case herald.ECONFLICT, herald.ENOTFOUND:
			// Another node holds the subscription now, or it is gone.
			d.fatal = err
			d.log.Info("stop delivering", "reason", herald.ErrorMessage(err))
		default:
			d.storeError("save delivery", err)
		}
		return false
	}
	if p.Cursor > 0 {
		d.cursor = p.Cursor
	}
	d.batch = herald.DeliveryProgress{}
	d.batchSince, d.lastSave = time.Time{}, time.Now()
	return true
}

// shutdown gives the requests under way a grace period to finish, then
// abandons them (they are sent again later), saves what is done and, if
// the subscription must be disabled, disables it.
func (d *deliverer) shutdown() {
	if grace := d.e.opts.ShutdownGrace; d.inflight > 0 && d.fatal == nil && grace > 0 {
		t := time.NewTimer(grace)
	wait:
		for d.inflight > 0 {
			select {
			case o := <-d.results:
				d.handle(o)
			case <-t.C:
				break wait
			}
		}
		t.Stop()
	}
	d.reqCancel()
	for d.inflight > 0 {
		d.handle(<-d.results)
	}
	if d.fatal == nil {
		d.flush()
	}
	if d.disableReason != "" && d.fatal == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), 5*time.Second)
		err := d.e.store.SetSubscriptionState(ctx, d.accountID, d.id, herald.SubscriptionDisabled, d.disableReason)
		cancel()
		if err != nil {
			d.log.Error("disable subscription", "reason", d.disableReason, "err", err)
		} else {
			d.log.Warn("subscription disabled", "reason", d.disableReason)
		}
	}
	d.finalCursor, d.finalFailing = d.cursor, d.failingSince
}

// clip cuts s to at most n bytes of valid UTF-8.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// seqWindow holds the seqs of first attempts under way, in the order
// they were sent (seq order), to find the lowest one not finished.
type seqWindow struct {
	seqs []int64
	done map[int64]bool
}

func (w *seqWindow) push(seq int64) { w.seqs = append(w.seqs, seq) }

func (w *seqWindow) markDone(seq int64) {
	w.done[seq] = true
	for len(w.seqs) > 0 && w.done[w.seqs[0]] {
		delete(w.done, w.seqs[0])
		w.seqs = w.seqs[1:]
	}
}

func (w *seqWindow) front() (int64, bool) {
	if len(w.seqs) == 0 {
		return 0, false
	}
	return w.seqs[0], true
}

func (w *seqWindow) len() int { return len(w.seqs) - len(w.done) }

// timeHeap holds next-attempt times to wake at, earliest first.
type timeHeap []time.Time

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *timeHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

func (h *timeHeap) add(t time.Time) {
	if len(*h) < maxDueTimes {
		heap.Push(h, t)
	}
}

func (h *timeHeap) top() (time.Time, bool) {
	if len(*h) == 0 {
		return time.Time{}, false
	}
	return (*h)[0], true
}

func (h *timeHeap) popUntil(now time.Time) {
	for len(*h) > 0 && !(*h)[0].After(now) {
		heap.Pop(h)
	}
}

// limiter spaces requests to a rate, allowing a burst of a tenth of a
// second's worth.
type limiter struct {
	rate, burst, tokens float64
	last                time.Time
}

func (l *limiter) set(rate float64) {
	if rate != l.rate {
		burst := max(1, rate/10)
		*l = limiter{rate: rate, burst: burst, tokens: burst}
	}
}

// take spends a token, or says how long until there is one.
func (l *limiter) take(now time.Time) time.Duration {
	if l.rate <= 0 {
		return 0
	}
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return 0
	}
	return time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
}
