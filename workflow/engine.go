package workflow

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/lease"
	"github.com/heraldhq/herald/notify"
)

// Store is what the engine needs of a store: the leases of workflows and
// runs, the runs and workflows themselves, and the event log.
type Store interface {
	herald.WorkflowQueue
	FindWorkflowRun(ctx context.Context, accountID, id string) (*herald.WorkflowRun, error)
	FindWorkflow(ctx context.Context, accountID, name string) (*herald.Workflow, error)
	FindEvents(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error)
	FindEventByID(ctx context.Context, accountID, id string) (*herald.Event, error)
}

// Catalog is the account's event types: the status rules that trigger
// workflows, and the checks an appended event goes through as if a
// client had sent it (catalog.Catalog).
type Catalog interface {
	// EventType returns ENOTFOUND if the account has no such type.
	EventType(ctx context.Context, accountID, category, typ string) (*herald.EventType, error)
	Prepare(ctx context.Context, accountID string, e *herald.Event) error
}

// Appender stores the events steps append, as the API's ingest does
// (ingest.Committer).
type Appender interface {
	Append(ctx context.Context, b *herald.AppendBatch) error
}

// Defaults of Options.
const (
	// DefaultLeaseTTL lets another node take a dead node's workflows and
	// runs within about 20 s.
	DefaultLeaseTTL = 15 * time.Second
	// DefaultPollInterval is how often readers and the runner look at
	// the store when nothing woke them: events stored by other nodes
	// without a Notify, runs another node enqueued.
	DefaultPollInterval = time.Second
	DefaultMaxWorkflows = 10000
	DefaultMaxRuns      = 8
	DefaultPageSize     = 500
)

// Options configure an Engine. Zero fields take the defaults.
type Options struct {
	Store Store
	// Catalog is required: status rules trigger runs, and the events
	// steps append are checked and typed by it.
	Catalog Catalog
	// Appender stores what the setAttributes, emitEvent and endSession
	// steps append; required.
	Appender Appender
	// Sender sends the messages of webhook, email and Slack steps;
	// default notify.New with Templates (and private addresses refused).
	Sender *notify.Sender
	// Templates caches the compiled input programs; default a cache of
	// the engine's own.
	Templates *delivery.Templates
	// Owner names this node in leases; it must differ between the nodes
	// sharing a database. Default: host name, process id and a random
	// part.
	Owner  string
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer receives the engine's metrics; nil registers none.
	Registerer prometheus.Registerer
	// LeaseTTL is how long a lease lasts unless renewed; workflow leases
	// are renewed every LeaseTTL/3.
	LeaseTTL time.Duration
	// PollInterval is the safety net behind Notify and Refresh.
	PollInterval time.Duration
	// NewID makes the ids of runs and of events without one; default
	// herald.NewEventID (UUIDv7).
	NewID func() string
	// MaxWorkflows caps the workflows this node holds; MaxRuns the runs
	// it performs at once; PageSize the events one read of the log
	// returns.
	MaxWorkflows int
	MaxRuns      int
	PageSize     int
}

// Engine reads the triggers of the workflows it leases and performs the
// runs it claims, until closed.
type Engine struct {
	opts      Options
	store     Store
	sender    *notify.Sender
	templates *delivery.Templates
	metrics   *metrics
	log       *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // runLoop and the runs
	start  sync.Once
	// readers leases the workflows and runs their trigger readers.
	readers *lease.Keeper[wfKey, *herald.Workflow, *reader]
	// runWake wakes the runner: runs were enqueued here, a run finished
	// and freed a slot, a retry was scheduled.
	runWake chan struct{}

	mu sync.Mutex
	// due are the retries this node scheduled, earliest first, for the
	// runner to claim them on time rather than at a poll.
	due []time.Time
}

type wfKey struct{ account, name string }

// New returns an engine; Start starts it.
func New(opts Options) (*Engine, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("workflow: Options.Store is required")
	case opts.Catalog == nil:
		return nil, errors.New("workflow: Options.Catalog is required")
	case opts.Appender == nil:
		return nil, errors.New("workflow: Options.Appender is required")
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
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.NewID == nil {
		opts.NewID = herald.NewEventID
	}
	if opts.MaxWorkflows <= 0 {
		opts.MaxWorkflows = DefaultMaxWorkflows
	}
	if opts.MaxRuns <= 0 {
		opts.MaxRuns = DefaultMaxRuns
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.Templates == nil {
		opts.Templates = &delivery.Templates{}
	}
	sender := opts.Sender
	if sender == nil {
		sender = notify.New(notify.Options{Templates: opts.Templates, Now: opts.Now})
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		opts:      opts,
		store:     opts.Store,
		sender:    sender,
		templates: opts.Templates,
		metrics:   newMetrics(opts.Registerer),
		log:       opts.Logger.With("component", "workflow", "owner", opts.Owner),
		ctx:       ctx,
		cancel:    cancel,
		runWake:   make(chan struct{}, 1),
	}
	e.readers = lease.New(lease.Config[wfKey, *herald.Workflow, *reader]{
		Name:    "workflows",
		Owner:   opts.Owner,
		TTL:     opts.LeaseTTL,
		Lease:   e.lease,
		Release: e.store.ReleaseWorkflows,
		Key:     func(w *herald.Workflow) wfKey { return wfKey{w.AccountID, w.Name} },
		Account: func(k wfKey) string { return k.account },
		New:     e.newReader,
		Held:    e.metrics.held,
	})
	return e, nil
}

// Owner is the name this engine leases under.
func (e *Engine) Owner() string { return e.opts.Owner }

// Start leases workflows and performs runs in the background.
func (e *Engine) Start() {
	e.start.Do(func() {
		e.readers.Start()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.runLoop()
		}()
	})
}

// Close stops the readers and the runs under way (a step cut short is
// performed again later, here or by another node), and gives the leases
// up so that another node can take over at once.
func (e *Engine) Close() error {
	e.cancel()
	e.wg.Wait()
	return e.readers.Close()
}

// Notify tells the readers of an account that it has new events: call it
// after each commit that stores events, so that they trigger runs without
// waiting for a poll.
func (e *Engine) Notify(accountID string) { e.readers.Notify(accountID) }

// Refresh leases at once and has every reader and the runner look at the
// store: call it after a workflow was created, changed, paused or
// resumed.
func (e *Engine) Refresh() {
	e.readers.Refresh()
	e.wakeRunner()
}

func (e *Engine) wakeRunner() {
	select {
	case e.runWake <- struct{}{}:
	default:
	}
}

// lease renews the leases and returns the workflows held, with their
// defaults set.
func (e *Engine) lease(ctx context.Context) ([]*herald.Workflow, error) {
	list, err := e.store.LeaseWorkflows(ctx, e.opts.Owner, e.opts.Now(), e.opts.LeaseTTL, e.opts.MaxWorkflows)
	if err != nil {
		if ctx.Err() == nil {
			e.metrics.storeErrors.Inc()
			e.log.Error("lease workflows", "err", err)
		}
		return nil, err
	}
	for i, w := range list {
		c := *w
		c.SetDefaults()
		list[i] = &c
	}
	return list, nil
}

// maxDue bounds the retry times remembered; past it, polls find the
// others.
const maxDue = 10000

// scheduled notes a retry due at t, for the runner to claim then.
func (e *Engine) scheduled(t time.Time) {
	e.mu.Lock()
	i, _ := slices.BinarySearchFunc(e.due, t, time.Time.Compare)
	if i < maxDue {
		e.due = slices.Insert(e.due, i, t)
		if len(e.due) > maxDue {
			e.due = e.due[:maxDue]
		}
	}
	e.mu.Unlock()
	e.wakeRunner()
}

// claimedUpTo forgets the retries due by now: a claim at now took them
// (or another node did).
func (e *Engine) claimedUpTo(now time.Time) {
	e.mu.Lock()
	i := 0
	for i < len(e.due) && !e.due[i].After(now) {
		i++
	}
	e.due = e.due[i:]
	e.mu.Unlock()
}

// nextDue is the earliest retry not claimed yet, zero if none.
func (e *Engine) nextDue() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.due) == 0 {
		return time.Time{}
	}
	return e.due[0]
}

// sleepCtx waits d or until the engine closes, and reports whether it
// is still open.
func (e *Engine) sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
