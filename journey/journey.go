// Package journey runs the sweeper that ends sessions and visits whose
// time ran out while no event came: an idle session, a session at its
// maximum length, a visit whose entity went quiet. An event that arrives
// for one ends it on the spot; the sweeper is for the ones nobody
// touches, so that their system events are written on time, also right
// after a restart. Several servers may sweep one database: the store ends
// each session or visit once.
package journey

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
)

// Defaults of Options.
const (
	DefaultInterval = time.Second
	DefaultBatch    = 500
)

// Options configure a Sweeper. Zero fields take the defaults.
type Options struct {
	// Interval is the time between sweeps: how late, at most, an expiry
	// is noticed.
	Interval time.Duration
	// Batch is how many sessions and visits one sweep ends at most; a
	// full sweep is followed at once by another.
	Batch      int
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Sweeper calls a store's ExpireJourneys every Interval until closed.
type Sweeper struct {
	store  herald.JourneySweeper
	opts   Options
	ended  prometheus.Counter
	failed prometheus.Counter
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start begins sweeping store in the background. Close stops it.
func Start(store herald.JourneySweeper, opts Options) *Sweeper {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sweeper{
		store: store,
		opts:  opts,
		ended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_journeys_expired_total",
			Help: "Sessions and visits ended by the sweeper because their time ran out.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_journey_sweeps_failed_total",
			Help: "Sweeps of expired sessions and visits that failed (retried at the next interval).",
		}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.ended, s.failed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(ctx)
	}()
	return s
}

func (s *Sweeper) run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		for s.sweep(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep runs one ExpireJourneys and reports whether it was full, so that
// more are likely due.
func (s *Sweeper) sweep(ctx context.Context) bool {
	n, err := s.store.ExpireJourneys(ctx, s.opts.Now(), s.opts.Batch)
	if err != nil {
		if ctx.Err() == nil {
			s.failed.Inc()
			s.opts.Logger.Error("sweep expired sessions and visits", "err", err)
		}
		return false
	}
	s.ended.Add(float64(n))
	return n >= s.opts.Batch && ctx.Err() == nil
}

// Close stops the sweeper and waits for a sweep under way to finish.
func (s *Sweeper) Close() {
	s.cancel()
	s.wg.Wait()
}
