package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/console"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/export"
	"github.com/heraldhq/herald/httpapi"
	"github.com/heraldhq/herald/ingest"
	"github.com/heraldhq/herald/journey"
	"github.com/heraldhq/herald/notify"
	"github.com/heraldhq/herald/postgres"
	"github.com/heraldhq/herald/sqlite"
	"github.com/heraldhq/herald/work"
	"github.com/heraldhq/herald/workflow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
)

// serveConfig is what `herald serve` is told by flags and environment.
type serveConfig struct {
	Addr         string
	Data         string
	DB           string
	LogFormat    string
	PprofAddr    string
	BootstrapKey string
	// SweepInterval is how often expired sessions and visits are ended.
	SweepInterval time.Duration
	// AllowPrivateTargets lets webhooks reach loopback, private and
	// link-local addresses.
	AllowPrivateTargets bool
	// AttemptRetention is how long delivery attempts are kept; 0 keeps
	// them for ever.
	AttemptRetention time.Duration
	// ExportDir is where file exports write (each under its own dir).
	ExportDir string
}

func newServeCmd() *cobra.Command {
	var cfg serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Herald server",
		Long: `Run the Herald server: the HTTP API under /v1, /healthz and /metrics.

With no --db, events are stored in an embedded SQLite database inside the
data folder and no other service is needed. With --db postgres://… they are
stored in PostgreSQL; several servers may share one database.

On first start Herald creates the account "default" and an admin API key.
Set HERALD_BOOTSTRAP_KEY to choose that key (scripts, CI); otherwise one is
generated, printed once and written to <data>/bootstrap.key (mode 0600).

Logs go to standard error, one line per request.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.BootstrapKey = os.Getenv("HERALD_BOOTSTRAP_KEY")
			setGCPercent()
			m, err := openMain(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer m.Close()
			return m.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", envDefault("HERALD_ADDR", "127.0.0.1:8080"), "address to listen on (env HERALD_ADDR)")
	f.StringVar(&cfg.Data, "data", envDefault("HERALD_DATA", "./herald-data"), "folder for local data: the SQLite database and bootstrap.key (env HERALD_DATA)")
	f.StringVar(&cfg.DB, "db", envDefault("HERALD_DB", ""), "database: a SQLite file path, or a postgres://… URL (env HERALD_DB; default <data>/herald.db)")
	f.StringVar(&cfg.PprofAddr, "pprof-addr", envDefault("HERALD_PPROF_ADDR", ""), "if set, serve Go's pprof profiles on this address, e.g. 127.0.0.1:6060 (env HERALD_PPROF_ADDR)")
	f.DurationVar(&cfg.SweepInterval, "sweep-interval", journey.DefaultInterval, "how often to end sessions and visits whose time ran out while no event came")
	f.BoolVar(&cfg.AllowPrivateTargets, "allow-private-targets", envDefault("HERALD_ALLOW_PRIVATE_TARGETS", "") == "true",
		"let webhooks reach loopback, private, link-local and cloud metadata addresses (tests, local use; env HERALD_ALLOW_PRIVATE_TARGETS=true)")
	f.DurationVar(&cfg.AttemptRetention, "attempt-retention", herald.DefaultAttemptRetention, "how long to keep the record of each webhook attempt (0: for ever)")
	f.StringVar(&cfg.ExportDir, "export-dir", envDefault("HERALD_EXPORT_DIR", ""), "folder that file exports write into, each in the dir it names (env HERALD_EXPORT_DIR; default <data>/exports)")
	f.StringVar(&cfg.LogFormat, "log-format", envDefault("HERALD_LOG_FORMAT", "text"), "log format on standard error: text or json (env HERALD_LOG_FORMAT)")
	return cmd
}

// store is everything a database provides to the server.
type store interface {
	herald.AccountService
	herald.KeyService
	herald.EventService
	herald.EventTypeService
	herald.SettingsService
	herald.LifecycleService
	herald.ProfileService
	herald.SessionService
	herald.VisitService
	herald.JourneySweeper
	herald.AuditService
	herald.SubscriptionService
	herald.DeliveryService
	herald.WorkflowService
	herald.WorkflowQueue
	herald.WorkService
	herald.WorkQueue
	Ping(ctx context.Context) error
	Close() error
}

// Main is one running server: its store, committer and HTTP listener.
type Main struct {
	cfg       serveConfig
	log       *slog.Logger
	store     store
	committer *ingest.Committer
	sweeper   *journey.Sweeper
	engine    *delivery.Engine
	workflows *workflow.Engine
	work      *work.Engine
	server    *http.Server
	listener  net.Listener
	// stopListen ends the wake-ups from other servers, and listenDone is
	// closed once they have ended (a store that has Listen only).
	stopListen context.CancelFunc
	listenDone chan struct{}
}

// eventListener is a store that hears of the events that other servers
// sharing its database store (postgres.Store).
type eventListener interface {
	Listen(ctx context.Context, fn func(accountID string)) error
}

// openMain opens the store, makes sure the bootstrap account and key exist
// and binds the listener, so that configuration errors surface before the
// server reports itself ready.
func openMain(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) (*Main, error) {
	log, err := newLogger(cfg.LogFormat, stderr)
	if err != nil {
		return nil, err
	}
	m := &Main{cfg: cfg, log: log}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("--data: cannot create folder %s: %w", cfg.Data, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var workers int
	m.store, workers, err = openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if err := bootstrap(ctx, m.store, cfg, stdout, log); err != nil {
		m.store.Close()
		return nil, err
	}
	m.engine, err = delivery.New(delivery.Options{
		Store:        m.store,
		Owner:        deliveryOwner(cfg),
		Logger:       log,
		Registerer:   reg,
		AllowPrivate: cfg.AllowPrivateTargets,
		// 0 (keep for ever) on the command line is negative here.
		AttemptRetention: cmp.Or(cfg.AttemptRetention, -1),
	})
	if err != nil {
		m.store.Close()
		return nil, err
	}
	// Every write that stores events wakes the engines that read its
	// account's log, and the live streams of that account.
	streams := httpapi.NewHub()
	wake := &engines{m.engine, streams}
	st := notifyingStore{store: m.store, n: wake}
	m.committer = ingest.New(st, ingest.Options{Workers: workers, Registerer: reg})
	cat := catalog.New(st, st, catalog.Options{})
	templates := &delivery.Templates{}
	sender := notify.New(notify.Options{
		Client:       delivery.NewClient(delivery.ClientOptions{AllowPrivate: cfg.AllowPrivateTargets}),
		AllowPrivate: cfg.AllowPrivateTargets,
		Templates:    templates,
	})
	m.workflows, err = workflow.New(workflow.Options{
		Store: st, Catalog: cat, Appender: m.committer, Sender: sender, Templates: templates,
		Owner: engineOwner(cfg, "workflows"), Logger: log, Registerer: reg,
	})
	if err != nil {
		m.committer.Close()
		m.store.Close()
		return nil, err
	}
	exportDir := cmp.Or(cfg.ExportDir, filepath.Join(cfg.Data, "exports"))
	m.work, err = work.New(work.Options{
		Store: st,
		Export: export.Options{
			Root: exportDir, Client: delivery.NewClient(delivery.ClientOptions{AllowPrivate: cfg.AllowPrivateTargets}),
			AllowPrivate: cfg.AllowPrivateTargets, Templates: templates,
		},
		Sender: sender, Owner: engineOwner(cfg, "work"), Logger: log, Registerer: reg,
	})
	if err != nil {
		m.committer.Close()
		m.store.Close()
		return nil, err
	}
	*wake = append(*wake, m.workflows, m.work)

	api := httpapi.NewServer(httpapi.Config{
		Accounts:      st,
		Keys:          st,
		Events:        st,
		EventTypes:    st,
		Settings:      st,
		Lifecycles:    st,
		Profiles:      st,
		Sessions:      st,
		Visits:        st,
		Audit:         st,
		Subscriptions: st,
		Deliveries:    st,
		Workflows:     st,
		Work:          st,
		Catalog:       cat,
		CompileTemplate: func(src string) error {
			_, err := delivery.Compile(src)
			return err
		},
		CompileTemplateAt: func(pointer, src string) error {
			_, err := delivery.CompileAt(pointer, src)
			return err
		},
		CheckDestination: export.Check,
		Appender:         m.committer,
		Streams:          streams,
		Ping:             m.store.Ping,
		Logger:           log,
		Registerer:       reg,
		Gatherer:         reg,
		Now:              time.Now,
		NewID:            func() string { return uuid.Must(uuid.NewV7()).String() },
		Console:          console.Handler(),
	})
	m.server = &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for every handler to return, and a live stream
	// returns only when its client leaves: closing the hub as shutdown
	// begins ends the streams (their clients reconnect elsewhere with
	// Last-Event-ID), while other requests in flight finish as usual.
	m.server.RegisterOnShutdown(streams.Close)
	m.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		m.committer.Close()
		m.store.Close()
		return nil, fmt.Errorf("--addr: cannot listen on %s: %w", cfg.Addr, err)
	}
	m.engine.Start()
	m.workflows.Start()
	m.work.Start()
	if l, ok := m.store.(eventListener); ok {
		// Events stored by other servers wake the engines here too;
		// those stored here also wake them directly (notifyingStore).
		var lctx context.Context
		lctx, m.stopListen = context.WithCancel(context.Background())
		m.listenDone = make(chan struct{})
		go func() {
			defer close(m.listenDone)
			_ = l.Listen(lctx, wake.Notify)
		}()
	}
	m.sweeper = journey.Start(st, journey.Options{Interval: cfg.SweepInterval, Logger: log, Registerer: reg})
	return m, nil
}

// engineOwner names this server in the leases of one engine: the
// delivery owner, with the engine's name for a SQLite file, whose leases
// of workflows and jobs are separate from its subscriptions'.
func engineOwner(cfg serveConfig, engine string) string {
	if o := deliveryOwner(cfg); o != "" {
		return o + ":" + engine
	}
	return ""
}

// deliveryOwner names this server in the leases of subscriptions. On
// PostgreSQL each process needs a name of its own (the engine's default),
// so that servers sharing the database share the work. A SQLite file has
// one server at a time, so the name is the file's: a restarted server
// holds at once what it held before it stopped, instead of waiting for
// its old leases to run out.
func deliveryOwner(cfg serveConfig) string {
	if isPostgres(cfg.DB) {
		return ""
	}
	db := cfg.DB
	if db == "" {
		db = filepath.Join(cfg.Data, "herald.db")
	}
	if abs, err := filepath.Abs(db); err == nil {
		db = abs
	}
	host, _ := os.Hostname()
	return "sqlite:" + host + ":" + db
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// openStore picks the store from --db.
func openStore(ctx context.Context, cfg serveConfig, log *slog.Logger) (store, int, error) {
	db := cfg.DB
	switch {
	case isPostgres(db):
		s, err := postgres.Open(ctx, db, postgres.Options{Logger: log})
		if err != nil {
			return nil, 0, fmt.Errorf("--db: cannot open PostgreSQL: %w", err)
		}
		log.Info("store opened", "kind", "postgres")
		// Commits of different accounts run in parallel on PostgreSQL.
		return s, 4, nil
	case strings.Contains(db, "://"):
		scheme, _, _ := strings.Cut(db, "://")
		return nil, 0, fmt.Errorf("--db: unsupported scheme %q (use a file path or postgres://…)", scheme)
	}
	if db == "" {
		db = filepath.Join(cfg.Data, "herald.db")
	}
	s, err := sqlite.Open(ctx, db, sqlite.Options{Logger: log})
	if err != nil {
		return nil, 0, fmt.Errorf("--db: cannot open SQLite database %s: %w", db, err)
	}
	log.Info("store opened", "kind", "sqlite", "path", db)
	return s, 1, nil
}

// bootstrap creates the default account and the operator's key on first
// start. With HERALD_BOOTSTRAP_KEY set it makes sure that key exists on
// every start; otherwise it generates one only when it creates the account.
func bootstrap(ctx context.Context, s store, cfg serveConfig, stdout io.Writer, log *slog.Logger) error {
	secret := cfg.BootstrapKey
	if secret != "" && len(secret) < herald.MinKeyLength {
		return fmt.Errorf("HERALD_BOOTSTRAP_KEY: must be at least %d characters long", herald.MinKeyLength)
	}
	generated := secret == ""
	if generated {
		secret, _, _ = herald.NewKeySecret()
	}
	key := &herald.APIKey{
		ID:        herald.NewRandomID("key_"),
		AccountID: herald.DefaultAccountID,
		Name:      "bootstrap",
		Prefix:    herald.KeyPrefix(secret),
		Hash:      herald.HashKey(secret),
		Scopes:    []string{herald.ScopeAdmin},
		Bootstrap: true,
		CreatedAt: time.Now().UTC(),
	}
	_, err := s.FindAccountByID(ctx, herald.DefaultAccountID)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND:
		acct := &herald.Account{ID: herald.DefaultAccountID, Name: "default", CreatedAt: key.CreatedAt}
		err := s.CreateAccount(ctx, acct, key)
		if herald.ErrorCode(err) == herald.ECONFLICT {
			// Another server on the same database created it first.
			return nil
		}
		if err != nil {
			return fmt.Errorf("create the default account: %w", err)
		}
		log.Info("created the default account and its bootstrap key", "key_id", key.ID)
		if generated {
			return writeBootstrapKey(cfg.Data, secret, stdout)
		}
		return nil
	case err != nil:
		return fmt.Errorf("find the default account: %w", err)
	}
	if generated {
		return nil
	}
	if _, err := s.FindKeyByHash(ctx, key.Hash); herald.ErrorCode(err) != herald.ENOTFOUND {
		return err // nil when the key is already there
	}
	if err := s.CreateKey(ctx, key); err != nil && herald.ErrorCode(err) != herald.ECONFLICT {
		return fmt.Errorf("store HERALD_BOOTSTRAP_KEY: %w", err)
	}
	log.Info("added the bootstrap key from HERALD_BOOTSTRAP_KEY", "key_id", key.ID)
	return nil
}

// writeBootstrapKey prints a generated key once and keeps it in a file only
// its owner can read.
func writeBootstrapKey(dataDir, secret string, stdout io.Writer) error {
	path := filepath.Join(dataDir, "bootstrap.key")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "\nHerald created the account \"default\" and this admin API key (shown once, also in %s):\n\n    %s\n\n", path, secret)
	return nil
}

func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format: unknown format %q (use text or json)", format)
}

// serveGCPercent is the garbage collector's target for a server unless
// GOGC says otherwise. The live heap of a server is small (tens of MB) and
// ingest allocates a lot per event, so trading a few times that heap for
// fewer collections is cheap: single-event ingest went from about 4,800 to
// 5,700 requests/s on a 2-core machine (BENCHMARKS.md).
const serveGCPercent = 400

func setGCPercent() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(serveGCPercent)
	}
}

// Addr is the address the server listens on (useful with --addr :0).
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Run serves until ctx ends, then shuts down gracefully: in-flight requests
// finish, queued events are committed, the store is closed by Close.
func (m *Main) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- m.server.Serve(m.listener) }()
	if m.cfg.PprofAddr != "" {
		// Profiles are for operators on a trusted address only; they sit
		// on their own listener so the API never exposes them.
		pprofServer := &http.Server{Addr: m.cfg.PprofAddr, Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
		go pprofServer.ListenAndServe()
		defer pprofServer.Close()
	}
	m.log.Info("herald is listening", "addr", "http://"+m.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	m.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := m.server.Shutdown(shutdownCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Close releases the committer and the store.
func (m *Main) Close() error {
	if m.sweeper != nil {
		m.sweeper.Close()
	}
	if m.stopListen != nil {
		m.stopListen()
		<-m.listenDone
	}
	// The engines that append (workflow steps) stop before the committer.
	var err error
	if m.workflows != nil {
		err = errors.Join(err, m.workflows.Close())
	}
	if m.work != nil {
		err = errors.Join(err, m.work.Close())
	}
	err = errors.Join(err, m.committer.Close())
	if m.engine != nil {
		err = errors.Join(err, m.engine.Close())
	}
	if m.store != nil {
		err = errors.Join(err, m.store.Close())
	}
	m.log.Info("stopped")
	return err
}
