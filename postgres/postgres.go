package postgres

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tunes a Store. The zero value is fine.
type Options struct {
	// MaxConns caps the connection pool. Zero means the URL's
	// pool_max_conns if it has one, else DefaultMaxConns.
	MaxConns int32
	// Logger is told when Listen loses its connection and gets it back.
	// Nil means no log.
	Logger *slog.Logger
}

// DefaultMaxConns is the pool size unless told otherwise. Appends to one
// account wait for one another on its row lock while holding a connection
// each, so the pool is larger than the few appends a server runs at once,
// leaving room for reads (and API key lookups); it stays small because a
// small machine runs PostgreSQL best with few active connections.
const DefaultMaxConns = 8

// Store is Herald's storage on PostgreSQL: accounts, API keys, events,
// event types, settings, lifecycles, profiles, sessions, visits, the
// audit chain of system events, subscriptions and the state of their
// deliveries, workflows and their runs, work jobs and their history. It
// is safe for concurrent use, also by several processes on
// one database.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// Open connects to the database at url, a postgres:// URL or a key=value
// connection string, and brings its schema up to date. The tables live in
// the first schema of the connection's search_path.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("postgres: cannot parse the connection URL (want postgres://user@host:port/database?options)")
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{pool: pool, log: log}, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes every connection, waiting for those in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// migrate applies the embedded migrations that the database lacks, in name
// order, each recorded in schema_migrations. Everything happens in one
// transaction holding an advisory lock, so that several processes starting
// together apply each migration once, and a failed start leaves the schema
// as it was. The lock is keyed by schema, so that databases in different
// schemas (the tests) migrate in parallel.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("postgres: list migrations: %w", err)
	}
	slices.Sort(names)

	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	var schema *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if schema == nil {
		return errors.New("postgres: migrate: no schema of the search_path exists: create it or fix search_path")
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('herald.migrate.' || $1, 0))`, *schema); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    text PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	rows, _ := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("postgres: migrate: read applied versions: %w", err)
	}
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		if slices.Contains(applied, version) {
			continue
		}
		sql, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		// No arguments: pgx sends it with the simple protocol, which runs
		// a file of several statements.
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", version, err)
		}
		if step := migrationStep(version); step != nil {
			if err := step(ctx, tx); err != nil {
				return fmt.Errorf("postgres: migration %s: %w", version, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
			return fmt.Errorf("postgres: migration %s: record: %w", version, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: commit: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation,
// and on which constraint.
func isUniqueViolation(err error) (constraint string, ok bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return pgErr.ConstraintName, true
	}
	return "", false
}

// isForeignKeyViolation reports whether err is PostgreSQL's
// foreign_key_violation.
func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// encodeJSON encodes v as herald.MarshalEvent does: compact, without HTML
// escaping, so that raw JSON inside v is kept as it is.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// query builds a SELECT whose conditions are all ANDed, numbering its
// parameters.
type query struct {
	sql  strings.Builder
	args []any
}

func newQuery(head string, args ...any) *query {
	q := &query{args: args}
	q.sql.WriteString(head)
	return q
}

// param adds v as a parameter and returns its placeholder.
func (q *query) param(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// and adds a condition.
func (q *query) and(cond string) {
	q.sql.WriteString(" AND ")
	q.sql.WriteString(cond)
}

// where adds the condition "cond v": cond ends in an operator.
func (q *query) where(cond string, v any) {
	q.and(cond + " " + q.param(v))
}

// orderLimit ends the query: ORDER BY column LIMIT limit.
func (q *query) orderLimit(column string, limit int) {
	q.sql.WriteString(" ORDER BY " + column + " LIMIT " + q.param(limit))
}
