package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/heraldhq/herald"
	"github.com/prometheus/client_golang/prometheus"
)

// Appender is the store side: it stores many batches in one transaction.
type Appender interface {
	AppendEvents(ctx context.Context, batches []*herald.AppendBatch) error
}

// Options tune a Committer. Zero values take the defaults.
type Options struct {
	// Workers is how many commits may run at once. One suits SQLite (one
	// writer); a few suit PostgreSQL, where commits of different accounts
	// proceed in parallel. An account's batches always go to the same
	// worker: its commits are serialised by the store anyway (seq order),
	// so one worker per account gathers the largest groups. Default 1.
	Workers int
	// MaxEvents caps the events in one commit. Default 5000.
	MaxEvents int
	// Registerer receives the committer's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Committer implements group commit in front of an Appender.
type Committer struct {
	store     Appender
	maxEvents int
	queues    []chan *request // one per worker

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	wg     sync.WaitGroup

	batchEvents prometheus.Histogram
	commitTime  prometheus.Histogram
}

type request struct {
	batch *herald.AppendBatch
	done  chan error
}

// New starts a Committer; Close stops it.
func New(store Appender, opts Options) *Committer {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 5000
	}
	c := &Committer{
		store:     store,
		maxEvents: opts.MaxEvents,
		queues:    make([]chan *request, opts.Workers),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_commit_batch_events",
			Help:    "Events stored per database commit (group commit batch size).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_commit_duration_seconds",
			Help:    "Time one group commit spends in the store, flush included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(c.batchEvents, c.commitTime)
	}
	c.wg.Add(opts.Workers)
	for i := range c.queues {
		c.queues[i] = make(chan *request, 4096)
		go c.run(c.queues[i])
	}
	return c
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("ingest: committer is closed")

// Append queues b for the next commit and waits until it is durable or has
// failed. When ctx ends before the commit starts, b is not stored; once the
// commit has started, Append waits for its outcome so that the caller never
// reports a failure for events that were in fact stored.
func (c *Committer) Append(ctx context.Context, b *herald.AppendBatch) error {
	r := &request{batch: b, done: make(chan error, 1)}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	select {
	case c.queueFor(b.AccountID) <- r:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return ctx.Err()
	}
	return <-r.done
}

// Close stops taking batches, commits what is queued and waits for the
// workers to finish.
func (c *Committer) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		for _, q := range c.queues {
			close(q)
		}
	}
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// queueFor returns the queue of the worker that commits the account's
// batches.
func (c *Committer) queueFor(accountID string) chan *request {
	if len(c.queues) == 1 {
		return c.queues[0]
	}
	h := fnv.New32a()
	h.Write([]byte(accountID))
	return c.queues[h.Sum32()%uint32(len(c.queues))]
}

func (c *Committer) run(queue chan *request) {
	defer c.wg.Done()
	for first := range queue {
		group := []*request{first}
		n := len(first.batch.Events)
	gather:
		for n < c.maxEvents {
			select {
			case r, ok := <-queue:
				if !ok {
					break gather
				}
				group = append(group, r)
				n += len(r.batch.Events)
			default:
				break gather
			}
		}
		c.commit(group, n)
	}
}

func (c *Committer) commit(group []*request, n int) {
	batches := make([]*herald.AppendBatch, len(group))
	for i, r := range group {
		batches[i] = r.batch
	}
	// The commit runs on its own context: the requests' contexts may end,
	// but a commit that has begun is finished so its outcome is known.
	timer := prometheus.NewTimer(c.commitTime)
	err := c.store.AppendEvents(context.Background(), batches)
	timer.ObserveDuration()
	if err == nil {
		c.batchEvents.Observe(float64(n))
	} else {
		err = fmt.Errorf("group commit of %d events: %w", n, err)
	}
	for _, r := range group {
		r.done <- err
	}
}
