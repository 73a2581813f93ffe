package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite"
	sqlitelib "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeout is how long a connection waits for another connection's
// lock before it gives up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Checkpoints copy the WAL back into the database file. They run in the
// background, not in the commit that crosses SQLite's threshold, so that no
// request waits for one; and seldom, because a page changed by many commits
// in between is copied once. A PASSIVE checkpoint never blocks writers but
// cannot rewind the WAL while they keep appending: past restartFrames, a
// RESTART checkpoint holds writers back for the little left to copy and
// starts the WAL over, which bounds its size. It gives up after
// checkpointBusyTimeout rather than hold writers back while a long read
// keeps the WAL in use; the next one tries again.
const (
	checkpointInterval    = time.Second
	restartFrames         = 50_000 // about 200 MiB of 4 KiB pages
	checkpointBusyTimeout = 200 * time.Millisecond
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Logger receives what the store does on its own: migrations applied,
	// checkpoints that failed. Nil discards.
	Logger *slog.Logger
}

// Store is Herald's data on one SQLite database file. It implements
// herald.AccountService, herald.KeyService, herald.EventService,
// herald.EventTypeService, herald.SettingsService, herald.LifecycleService,
// herald.ProfileService, herald.SessionService, herald.VisitService,
// herald.JourneySweeper, herald.AuditService, herald.SubscriptionService,
// herald.DeliveryService, herald.WorkflowService, herald.WorkflowQueue,
// herald.WorkService and herald.WorkQueue, and is safe for concurrent use.
type Store struct {
	write *sql.DB // one connection: SQLite has one writer at a time anyway
	read  *sql.DB // several query-only connections
	ckpt  *sql.DB // one connection for the background checkpoints

	writes     *writeStmts    // AppendEvents' statements, prepared on write
	deliveries *deliveryStmts // the delivery engine's statements

	logger     *slog.Logger
	stopCheckp context.CancelFunc // called by Close to stop the checkpoints
	checkpDone chan struct{}      // closed when the checkpoints have stopped
}

// Open opens the database at path, creating it and its folder if needed,
// and brings its schema up to date.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" || strings.Contains(path, "?") || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: %q is not a database file path", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create folder for %s: %w", path, err)
	}

	s := &Store{logger: logger}
	drv, err := newDriver()
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s.write, err = openPool(drv, path, 1, busyTimeout, url.Values{
		// BEGIN IMMEDIATE takes the write lock at once, so that a second
		// process's writer waits (busy_timeout) instead of failing when
		// its read snapshot turns out to be stale at its first write.
		"_txlock": {"immediate"},
		"_pragma": {
			"journal_mode(WAL)", "synchronous(FULL)", "wal_autocheckpoint(0)",
			// Room for the index pages that a large batch changes.
			"cache_size(-65536)",
			// Under sustained load the WAL can grow past its usual size
			// before a checkpoint catches up; when it starts over, give
			// the disk space back.
			"journal_size_limit(268435456)",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, s.write, logger); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	// Give the query planner statistics, cheaply: analysis_limit bounds
	// the rows read per index, and optimize does nothing on a small or
	// unchanged database.
	if _, err := s.write.ExecContext(ctx, "PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002"); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: optimize %s: %w", path, err)
	}

	if s.writes, err = prepareWrites(ctx, s.write); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: prepare statements on %s: %w", path, err)
	}

	s.read, err = openPool(drv, path, max(4, runtime.NumCPU()), busyTimeout, url.Values{"_pragma": {"query_only(1)"}})
	if err == nil {
		err = s.read.PingContext(ctx)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	if s.deliveries, err = prepareDeliveries(ctx, s.write, s.read); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: prepare statements on %s: %w", path, err)
	}
	s.ckpt, err = openPool(drv, path, 1, checkpointBusyTimeout, url.Values{"_pragma": {"synchronous(FULL)"}})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s for checkpoints: %w", path, err)
	}
	ckptCtx, cancel := context.WithCancel(context.Background())
	s.stopCheckp, s.checkpDone = cancel, make(chan struct{})
	go s.checkpoints(ckptCtx)
	return s, nil
}

// checkpoints runs a checkpoint every checkpointInterval until ctx ends.
func (s *Store) checkpoints(ctx context.Context) {
	defer close(s.checkpDone)
	ticker := time.NewTicker(checkpointInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		frames, err := s.checkpoint(ctx, "PASSIVE")
		if err == nil && frames >= restartFrames {
			_, err = s.checkpoint(ctx, "RESTART")
		}
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("sqlite checkpoint failed", "err", err)
		}
	}
}

// checkpoint runs a checkpoint in mode and returns the size of the WAL, in
// frames, that it found.
func (s *Store) checkpoint(ctx context.Context, mode string) (frames int, err error) {
	var busy, copied int
	err = s.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &frames, &copied)
	return frames, err
}

// openPool opens a pool of up to n connections of drv on path that wait
// up to busy for a lock, with params.
func openPool(drv *sqlite3.Driver, path string, n int, busy time.Duration, params url.Values) (*sql.DB, error) {
	params.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	params.Add("_pragma", "foreign_keys(1)")
	db := sql.OpenDB(connector{drv, path + "?" + params.Encode()})
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// migrate applies, in one transaction, the embedded migrations that the
// database has not recorded yet, in the order of their names.
func migrate(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    TEXT PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return err
	}
	applied := map[string]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return err
	}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		applied[v] = true
	}
	if err := rows.Close(); err != nil {
		return err
	}

	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, name := range names {
		version := path.Base(name)
		if applied[version] {
			continue
		}
		script, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(script)); err != nil {
			return fmt.Errorf("%s: %w", version, err)
		}
		if step := migrationStep(version); step != nil {
			if err := step(ctx, tx); err != nil {
				return fmt.Errorf("%s: %w", version, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
			version, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("%s: %w", version, err)
		}
		logger.Info("applied migration", "store", "sqlite", "version", version)
	}
	return tx.Commit()
}

// Ping checks that the database answers to a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close stops the background checkpoints and closes the database. Calls in
// flight finish first.
func (s *Store) Close() error {
	if s.stopCheckp != nil {
		s.stopCheckp()
		<-s.checkpDone
	}
	if s.writes != nil {
		s.writes.close()
	}
	if s.deliveries != nil {
		s.deliveries.close()
	}
	var errs []error
	for _, db := range []*sql.DB{s.ckpt, s.read, s.write} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

// isConstraint reports whether err is a violation of one of the given
// SQLite extended constraint codes.
func isConstraint(err error, codes ...int) bool {
	var e *sqlite3.Error
	return errors.As(err, &e) && slices.Contains(codes, e.Code())
}

func isUniqueViolation(err error) bool {
	return isConstraint(err, sqlitelib.SQLITE_CONSTRAINT_UNIQUE, sqlitelib.SQLITE_CONSTRAINT_PRIMARYKEY)
}

func isForeignKeyViolation(err error) bool {
	return isConstraint(err, sqlitelib.SQLITE_CONSTRAINT_FOREIGNKEY)
}

// nullIfEmpty stores an empty string as NULL.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// micros is how times are stored.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// encodeJSON returns v as JSON text for a TEXT column: compact and without
// HTML escaping, as herald.MarshalEvent writes events, so that values a
// client sent come back as it wrote them.
func encodeJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(buf.Bytes(), "\n")), nil
}
