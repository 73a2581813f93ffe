package work

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/export"
	"github.com/heraldhq/herald/lease"
	"github.com/heraldhq/herald/notify"
)

// Store is what the engine needs of a store: the job queue, the job
// itself (reloaded when a runner starts, as the lease listing may be older
// than the last save) and the event log.
type Store interface {
	herald.WorkQueue
	FindWork(ctx context.Context, accountID, id string) (*herald.Work, error)
	FindEvents(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error)
}

// Defaults of Options.
const (
	DefaultLeaseTTL     = 15 * time.Second
	DefaultPollInterval = 5 * time.Second
	DefaultMaxJobs      = 10000
	DefaultPageSize     = 1000
	DefaultTimeout      = 2 * time.Minute
	// DefaultStreamEvery is how often a stream export without Every
	// reports synced and synccomplete.
	DefaultStreamEvery = time.Minute
)

// Timing of a runner that is not configurable: a failed read or save of
// the store is retried after storePause; progress that may be lost (a
// cursor moved over events the filter dropped, an alert's window) is
// saved at most every lazySaveInterval; a save may take saveTimeout, also
// when the runner is being stopped.
const (
	storePause       = time.Second
	lazySaveInterval = time.Second
	saveTimeout      = 10 * time.Second
)

// Options configure an Engine. Zero fields take the defaults.
type Options struct {
	Store Store
	// Export is how exports open their destinations (export.Open).
	Export export.Options
	// Sender sends alerts; default notify.New with Export's client,
	// templates, AllowPrivate and Now.
	Sender *notify.Sender
	// Owner names this node in leases; it must differ between the nodes
	// sharing a database. Default: host name, process id, random part.
	Owner string
	// Now is the clock of schedules, retries, records and system events.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// LeaseTTL is how long a lease lasts unless renewed; it is renewed
	// every LeaseTTL/3, which is also how soon a pause is noticed when
	// nobody calls Refresh.
	LeaseTTL time.Duration
	// PollInterval is the longest a runner sleeps before it looks at its
	// job again: new events when nobody called Notify, and the clock.
	PollInterval time.Duration
	// MaxJobs caps the jobs this node holds.
	MaxJobs int
	// PageSize is how many events one read of the log returns at most.
	PageSize int
	// Timeout bounds one unit write or one alert message.
	Timeout time.Duration
	// Appended, if set, is called after the engine stored system events
	// of an account (synced, failed, …), so that whatever reads the log
	// (subscriptions, workflows) can look at once. The engine's own jobs
	// of the account are woken without it.
	Appended func(accountID string)
}

// Engine runs the jobs it leases, one runner goroutine each, until
// closed.
type Engine struct {
	opts    Options
	store   Store
	sender  *notify.Sender
	metrics *metrics

	ctx    context.Context
	cancel context.CancelFunc

	// round counts the lease rounds, to tell a listing read after a
	// runner's first save from one read before (runner.stale).
	round atomic.Int64

	// keeper leases the jobs and runs their runners. mu is its lock and
	// current its map of the runner of each job held, read under mu.
	keeper  *lease.Keeper[jobKey, *herald.Work, *runner]
	mu      sync.RWMutex
	current map[jobKey]*runner
}

type jobKey struct{ account, id string }

// New returns an engine; Start starts it.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("work: Options.Store is required")
	}
	if opts.Owner == "" {
		opts.Owner = lease.DefaultOwner()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Export.Now == nil {
		opts.Export.Now = opts.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.MaxJobs <= 0 {
		opts.MaxJobs = DefaultMaxJobs
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	sender := opts.Sender
	if sender == nil {
		sender = notify.New(notify.Options{
			Client:       opts.Export.Client,
			AllowPrivate: opts.Export.AllowPrivate,
			Templates:    opts.Export.Templates,
			Now:          opts.Now,
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		opts:    opts,
		store:   opts.Store,
		sender:  sender,
		metrics: newMetrics(opts.Registerer),
		ctx:     ctx,
		cancel:  cancel,
	}
	e.keeper = lease.New(lease.Config[jobKey, *herald.Work, *runner]{
		Name:    "work",
		Owner:   opts.Owner,
		TTL:     opts.LeaseTTL,
		Lease:   e.lease,
		Release: e.store.ReleaseWork,
		Key:     func(w *herald.Work) jobKey { return jobKey{w.AccountID, w.ID} },
		Account: func(k jobKey) string { return k.account },
		New:     e.newRunner,
		Held:    e.metrics.held,
		Mu:      &e.mu,
	})
	e.current = e.keeper.Running()
	return e, nil
}

// Owner is the name this engine leases under.
func (e *Engine) Owner() string { return e.opts.Owner }

// Start leases jobs and runs them in the background.
func (e *Engine) Start() { e.keeper.Start() }

// Close stops every runner (a unit write or a message under way is
// abandoned and done again later, with the same content), and gives the
// leases up so that another node can take over at once.
func (e *Engine) Close() error {
	e.cancel()
	return e.keeper.Close()
}

// Notify tells the runners of an account that it has new events: call it
// after each commit that stores events, so that streams and alerts act
// without waiting for a poll.
func (e *Engine) Notify(accountID string) { e.keeper.Notify(accountID) }

// Refresh leases at once and has every runner look at its job again: call
// it after a job was created, changed, paused, resumed or asked to run
// now.
func (e *Engine) Refresh() { e.keeper.Refresh() }

// lease starts a lease round: it renews the leases and returns the jobs
// held, with their defaults set. Jobs no longer held (paused, deleted,
// finished or taken by another node) have their runners stopped; a runner
// that stopped by itself (its save was refused) is replaced.
func (e *Engine) lease(ctx context.Context) ([]*herald.Work, error) {
	e.round.Add(1)
	jobs, err := e.store.LeaseWork(ctx, e.opts.Owner, e.opts.Now(), e.opts.LeaseTTL, e.opts.MaxJobs)
	if err != nil {
		if ctx.Err() == nil {
			e.metrics.leaseErrors.Inc()
			e.opts.Logger.Error("lease work", "owner", e.opts.Owner, "err", err)
		}
		return nil, err
	}
	for i, w := range jobs {
		c := *w
		c.SetDefaults()
		jobs[i] = &c
	}
	return jobs, nil
}

// wakeAccount wakes the runners of an account but except: they may
// export or alert on the system events except just wrote.
func (e *Engine) wakeAccount(accountID string, except *runner) {
	e.keeper.NotifyOthers(accountID, except)
	if e.opts.Appended != nil {
		e.opts.Appended(accountID)
	}
}

// definitionKey identifies what a runner cannot change while it runs: the
// definition a client sets and the secret. RunNowAt is passed on without
// a restart.
func definitionKey(w *herald.Work) string {
	b, err := json.Marshal(struct {
		Name   string
		Filter herald.Filter
		Export *herald.ExportConfig
		Alert  *herald.AlertConfig
		Secret string
	}{w.Name, w.Filter, w.Export, w.Alert, w.Secret})
	if err != nil {
		// Cannot happen for these types; a key that never matches
		// restarts the runner each lease, which is safe.
		return fmt.Sprint(w.UpdatedAt.UnixNano(), err)
	}
	return string(bytes.TrimSpace(b))
}
