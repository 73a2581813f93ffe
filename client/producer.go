package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/heraldhq/herald"
)

// Defaults of ProducerOptions.
const (
	DefaultBatchSize   = 100
	DefaultLinger      = 50 * time.Millisecond
	DefaultConcurrency = 2
)

// ErrProducerClosed is returned by Send and Flush on a closed Producer.
var ErrProducerClosed = errors.New("client: producer is closed")

// ProducerOptions configure a Producer. The zero value takes the defaults.
type ProducerOptions struct {
	// BatchSize is how many events a request carries at most (default
	// 100, at most herald.MaxBatchEvents).
	BatchSize int
	// Linger is how long the first event of a batch waits for others
	// before the batch is sent anyway (default 50ms).
	Linger time.Duration
	// Concurrency is how many batch requests may be under way at once
	// (default 2).
	Concurrency int
	// MaxRetries is how many times a failed batch request is tried again
	// (0: as the Client does).
	MaxRetries int
	// OnResult, when set, is told what became of each event: item is its
	// result, and err is non-nil when it was not stored (item.Error, or
	// the error of the whole request). It is called from the Producer's
	// goroutines, one call at a time; it must not call the Producer.
	OnResult func(e *herald.Event, item BatchItem, err error)
}

// Producer buffers events and sends them in batches, several batches at
// once: the way to send many events fast. Create it with
// Client.NewProducer and Close it when done.
type Producer struct {
	c    *Client
	opts ProducerOptions

	in      chan pending // the buffer: events and flush markers
	batches chan batchOfEvents
	ctx     context.Context // of the requests; cancelled when Close gives up
	cancel  context.CancelFunc
	stopped chan struct{} // closed when every goroutine has returned

	mu     sync.RWMutex // Send and Flush hold it to write to in; Close to close it
	closed bool

	track tracker

	resultMu sync.Mutex // one OnResult at a time
	failMu   sync.Mutex
	failed   int
	firstErr error
}

// pending is an event on its way to a batch, or a flush marker: closed
// once every batch cut before it is finished. Both go through one
// channel, so a marker comes after every event sent before it.
type pending struct {
	e       *herald.Event
	flushed chan struct{}
}

type batchOfEvents struct {
	n      int64 // batches are numbered from 1, in the order they are cut
	events []*herald.Event
}

// NewProducer starts a Producer that sends with c.
func (c *Client) NewProducer(opts ProducerOptions) *Producer {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	opts.BatchSize = min(opts.BatchSize, herald.MaxBatchEvents)
	if opts.Linger <= 0 {
		opts.Linger = DefaultLinger
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	sender := c
	if opts.MaxRetries > 0 {
		cc := *c
		cc.retries = opts.MaxRetries
		sender = &cc
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{
		c:       sender,
		opts:    opts,
		in:      make(chan pending, opts.BatchSize*opts.Concurrency),
		batches: make(chan batchOfEvents),
		ctx:     ctx,
		cancel:  cancel,
		stopped: make(chan struct{}),
		track:   tracker{finished: map[int64]bool{}},
	}
	var wg sync.WaitGroup
	wg.Go(p.gather)
	for range opts.Concurrency {
		wg.Go(p.deliver)
	}
	go func() {
		wg.Wait()
		p.track.releaseAll()
		close(p.stopped)
	}()
	return p
}

// Send adds e to the buffer; it blocks while the buffer is full. An event
// without an id is given one first, in e.ID. That Send returned says only
// that the event is buffered: Flush, Close and OnResult tell whether it
// was stored.
func (p *Producer) Send(ctx context.Context, e *herald.Event) error {
	if e == nil {
		return errors.New("client: Producer.Send: nil event")
	}
	ensureID(e)
	return p.enqueue(ctx, pending{e: e})
}

func (p *Producer) enqueue(ctx context.Context, it pending) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrProducerClosed
	}
	select {
	case p.in <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Flush sends what is buffered now and waits until it is stored or has
// failed. It returns an error when events were not stored since the last
// Flush or Close returned: how many, and the first reason.
func (p *Producer) Flush(ctx context.Context) error {
	flushed := make(chan struct{})
	if err := p.enqueue(ctx, pending{flushed: flushed}); err != nil {
		return err
	}
	select {
	case <-flushed:
		return p.takeFailures()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close sends what is buffered, waits for it, and stops the Producer.
// When ctx ends first, the requests under way are abandoned (their events
// reported as failed to OnResult) and Close returns ctx's error once the
// Producer has stopped. It may be called more than once.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.in)
	}
	p.mu.Unlock()
	select {
	case <-p.stopped:
	case <-ctx.Done():
		p.cancel()
		<-p.stopped
		return errors.Join(ctx.Err(), p.takeFailures())
	}
	p.cancel()
	return p.takeFailures()
}

// gather cuts the buffer into batches: when one is full, when its first
// event has waited Linger, or at a flush.
func (p *Producer) gather() {
	defer close(p.batches)
	var (
		cur []*herald.Event
		n   int64
	)
	linger := time.NewTimer(p.opts.Linger)
	linger.Stop()
	defer linger.Stop()
	cut := func() {
		linger.Stop()
		if len(cur) == 0 {
			return
		}
		n++
		p.batches <- batchOfEvents{n: n, events: cur}
		cur = nil
	}
	for {
		select {
		case it, ok := <-p.in:
			switch {
			case !ok:
				cut()
				return
			case it.flushed != nil:
				cut()
				p.track.await(n, it.flushed)
			default:
				cur = append(cur, it.e)
				if len(cur) == 1 {
					linger.Reset(p.opts.Linger)
				}
				if len(cur) >= p.opts.BatchSize {
					cut()
				}
			}
		case <-linger.C:
			cut()
		}
	}
}

// deliver sends batches until there are no more.
func (p *Producer) deliver() {
	for b := range p.batches {
		res, err := p.c.SendBatch(p.ctx, b.events)
		p.report(b.events, res, err)
		p.track.finish(b.n)
	}
}

// report tells OnResult what became of each event of a batch, and counts
// those not stored.
func (p *Producer) report(events []*herald.Event, res *BatchResult, err error) {
	done := make([]bool, len(events))
	failed := 0
	var first error
	p.resultMu.Lock()
	defer p.resultMu.Unlock()
	if res != nil {
		for _, item := range res.Items {
			if item.Index < 0 || item.Index >= len(events) || done[item.Index] {
				continue
			}
			done[item.Index] = true
			var itemErr error
			if item.Status == ItemFailed {
				itemErr = fmt.Errorf("event %s: %w", events[item.Index].ID, itemError(item))
				failed++
				if first == nil {
					first = itemErr
				}
			}
			if p.opts.OnResult != nil {
				p.opts.OnResult(events[item.Index], item, itemErr)
			}
		}
	}
	if err == nil {
		err = errors.New("no result for the event")
	}
	for i, e := range events {
		if done[i] {
			continue
		}
		failed++
		if first == nil {
			first = err
		}
		if p.opts.OnResult != nil {
			item := BatchItem{Index: i, Status: ItemFailed, ID: e.ID}
			if apiErr, ok := errors.AsType[*Error](err); ok {
				item.Error = apiErr
			}
			p.opts.OnResult(e, item, err)
		}
	}
	if failed > 0 {
		p.failMu.Lock()
		p.failed += failed
		if p.firstErr == nil {
			p.firstErr = first
		}
		p.failMu.Unlock()
	}
}

// itemError is the error of a failed item.
func itemError(item BatchItem) error {
	if item.Error != nil {
		return item.Error
	}
	return errors.New("not stored")
}

// takeFailures returns, and forgets, the events not stored since it was
// last called.
func (p *Producer) takeFailures() error {
	p.failMu.Lock()
	defer p.failMu.Unlock()
	if p.failed == 0 {
		return nil
	}
	err := fmt.Errorf("client: %d events not stored: %w", p.failed, p.firstErr)
	p.failed, p.firstErr = 0, nil
	return err
}

// tracker knows which batches are finished, and wakes the flushes that
// wait for every batch up to a number.
type tracker struct {
	mu       sync.Mutex
	upTo     int64 // every batch up to this one is finished
	finished map[int64]bool
	waiters  []waiter
}

type waiter struct {
	n  int64
	ch chan struct{}
}

func (t *tracker) finish(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finished[n] = true
	for t.finished[t.upTo+1] {
		delete(t.finished, t.upTo+1)
		t.upTo++
	}
	kept := t.waiters[:0]
	for _, w := range t.waiters {
		if w.n <= t.upTo {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	t.waiters = kept
}

// await closes ch once every batch up to n is finished.
func (t *tracker) await(n int64, ch chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n <= t.upTo {
		close(ch)
		return
	}
	t.waiters = append(t.waiters, waiter{n, ch})
}

// releaseAll wakes every waiter: the Producer has stopped, and every
// batch is finished.
func (t *tracker) releaseAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.waiters {
		close(w.ch)
	}
	t.waiters = nil
}
