package delivery

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/lease"
)

// Store is what the engine needs of a store: the delivery state, a
// subscription's state and secrets, and the event log.
type Store interface {
	herald.DeliveryService
	SetSubscriptionState(ctx context.Context, accountID, id, state, reason string) error
	FindSigningSecrets(ctx context.Context, accountID, id string) ([]herald.SigningSecret, error)
	FindEvents(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error)
}

// Defaults of Options.
const (
	// DefaultLeaseTTL lets another node take a dead node's subscriptions
	// within about 20 s: the lease runs out at most 15 s after it was
	// last renewed, and the others look every 5 s.
	DefaultLeaseTTL         = 15 * time.Second
	DefaultPollInterval     = 5 * time.Second
	DefaultMaxSubscriptions = 10000
	DefaultPageSize         = 500
	DefaultShutdownGrace    = time.Second
	DefaultFlushInterval    = 10 * time.Millisecond
)

// Options configure an Engine. Zero fields take the defaults.
type Options struct {
	Store Store
	// Owner names this node in leases; it must differ between the nodes
	// sharing a database. Default: host name, process id and a random
	// part.
	Owner string
	// Now is the clock of records and schedules (attempts, next attempt
	// times, webhook-timestamp).
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// AllowPrivate lets deliveries reach loopback, private, link-local
	// and metadata addresses.
	AllowPrivate bool
	// LeaseTTL is how long a lease lasts unless renewed; it is renewed
	// every LeaseTTL/3.
	LeaseTTL time.Duration
	// PollInterval is the safety net: how often a deliverer reads the log
	// and looks for due messages when nothing woke it (Notify wakes it at
	// once).
	PollInterval time.Duration
	// MaxSubscriptions caps the subscriptions this node holds.
	MaxSubscriptions int
	// PageSize is how many events one read of the log returns at most.
	PageSize int
	// FlushInterval is how long a deliverer under load gathers results
	// before saving them in one commit.
	FlushInterval time.Duration
	// ShutdownGrace is how long Close, or a deliverer being stopped,
	// waits for requests under way before abandoning them (an abandoned
	// request is sent again later). Negative: no wait.
	ShutdownGrace time.Duration
	// Client sends the requests; default NewClient with AllowPrivate.
	Client *Client
	// AttemptRetention is how long attempts are kept; default
	// herald.DefaultAttemptRetention, negative keeps them for ever.
	AttemptRetention time.Duration
}

// pruneInterval and pruneBatch pace the attempt log's retention: a small
// delete at a time, so that no commit holds the writer long.
const (
	pruneInterval = time.Minute
	pruneBatch    = 5000
)

// Engine delivers the subscriptions it leases, one deliverer goroutine
// each, until closed.
type Engine struct {
	opts      Options
	store     Store
	client    *Client
	templates Templates
	metrics   *metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // pruneAttempts
	start  sync.Once

	// keeper leases the subscriptions and runs their deliverers. mu is
	// its lock and current its map of the deliverer of each subscription
	// held, read under mu.
	keeper  *lease.Keeper[subKey, *herald.Subscription, *deliverer]
	mu      sync.RWMutex
	current map[subKey]*deliverer
}

type subKey struct{ account, id string }

// New returns an engine; Start starts it.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("delivery: Options.Store is required")
	}
	if opts.Owner == "" {
		opts.Owner = lease.DefaultOwner()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.AttemptRetention == 0 {
		opts.AttemptRetention = herald.DefaultAttemptRetention
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.MaxSubscriptions <= 0 {
		opts.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = DefaultShutdownGrace
	}
	client := opts.Client
	if client == nil {
		client = NewClient(ClientOptions{AllowPrivate: opts.AllowPrivate})
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		opts:    opts,
		store:   opts.Store,
		client:  client,
		metrics: newMetrics(opts.Registerer),
		ctx:     ctx,
		cancel:  cancel,
	}
	e.keeper = lease.New(lease.Config[subKey, *herald.Subscription, *deliverer]{
		Name:     "subscriptions",
		Owner:    opts.Owner,
		TTL:      opts.LeaseTTL,
		Lease:    e.lease,
		Release:  e.store.ReleaseSubscriptions,
		Key:      func(s *herald.Subscription) subKey { return subKey{s.AccountID, s.ID} },
		Account:  func(k subKey) string { return k.account },
		New:      e.newDeliverer,
		Released: e.metrics.forget,
		Held:     e.metrics.held,
		Mu:       &e.mu,
	})
	e.current = e.keeper.Running()
	return e, nil
}

// Owner is the name this engine leases under.
func (e *Engine) Owner() string { return e.opts.Owner }

// Start leases subscriptions and delivers them in the background.
func (e *Engine) Start() {
	e.start.Do(func() {
		e.keeper.Start()
		if e.opts.AttemptRetention > 0 {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				e.pruneAttempts()
			}()
		}
	})
}

// pruneAttempts deletes the attempts older than AttemptRetention, every
// pruneInterval, until closed. Every node may prune: a delete of what
// another already deleted deletes nothing.
func (e *Engine) pruneAttempts() {
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		before := e.opts.Now().Add(-e.opts.AttemptRetention)
		for e.ctx.Err() == nil {
			n, err := e.store.PruneAttempts(e.ctx, before, pruneBatch)
			if err != nil {
				if e.ctx.Err() == nil {
					e.metrics.storeErrors.Inc()
					e.opts.Logger.Error("prune old attempts", "err", err)
				}
				break
			}
			if n < pruneBatch {
				break
			}
		}
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops every deliverer (requests under way get ShutdownGrace to
// finish, then are abandoned and sent again later), saves what they did,
// and gives the leases up so that another node can take over at once.
func (e *Engine) Close() error {
	e.cancel()
	e.wg.Wait()
	defer e.client.CloseIdleConnections()
	return e.keeper.Close()
}

// Notify tells the deliverers of an account that it has new events: call
// it after each commit that stores events, so that they are sent without
// waiting for a poll.
func (e *Engine) Notify(accountID string) { e.keeper.Notify(accountID) }

// Refresh leases at once and has every deliverer look for due messages
// and reload its secrets: call it after a subscription was created,
// changed, paused, resumed, its secret rotated, or its messages retried
// by hand.
func (e *Engine) Refresh() { e.keeper.Refresh() }

// lease renews the leases and returns the subscriptions held, with their
// defaults set.
func (e *Engine) lease(ctx context.Context) ([]*herald.Subscription, error) {
	subs, err := e.store.LeaseSubscriptions(ctx, e.opts.Owner, e.opts.Now(), e.opts.LeaseTTL, e.opts.MaxSubscriptions)
	if err != nil {
		if ctx.Err() == nil {
			e.metrics.leaseErrors.Inc()
			e.opts.Logger.Error("lease subscriptions", "owner", e.opts.Owner, "err", err)
		}
		return nil, err
	}
	for i, s := range subs {
		c := *s
		c.SetDefaults()
		subs[i] = &c
	}
	return subs, nil
}
