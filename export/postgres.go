package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
)

// dsnKeys are the connection parameters a DSN may set. The others that
// pgx knows read files on the server (sslrootcert, sslkey, passfile,
// servicefile…), which a client must not make it do, or are of no use
// to an export.
var dsnKeys = []string{
	"host", "port", "user", "password", "dbname", "database",
	"sslmode", "sslsni", "sslnegotiation", "channel_binding", "require_auth",
	"connect_timeout", "application_name", "target_session_attrs",
}

// parseDSN returns the connection config of a PostgreSQL destination and
// its password (for scrubbing). The errors never contain the password.
func parseDSN(dsn string) (*pgx.ConnConfig, string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return nil, "", errors.New("must be a URL such as postgres://user:password@host:5432/database")
	}
	password, _ := u.User.Password()
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, "", errors.New("has a query string that does not parse")
	}
	if p := query.Get("password"); p != "" {
		password = p
	}
	var refused []string
	for k := range query {
		if !slices.Contains(dsnKeys, k) {
			refused = append(refused, k)
		}
	}
	if len(refused) > 0 {
		sort.Strings(refused)
		return nil, "", fmt.Errorf("has parameters an export may not set: %s (allowed: %s)",
			strings.Join(refused, ", "), strings.Join(dsnKeys, ", "))
	}
	cfg, err := pgx.ParseConfigWithOptions(dsn, pgx.ParseConfigOptions{
		ParseConfigOptions: pgconn.ParseConfigOptions{ConnStringAllowedKeys: dsnKeys},
	})
	if err != nil {
		msg := err.Error()
		// pgx quotes the connection string (password masked, it hopes)
		// before the reason: keep the reason only.
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			msg = msg[i+3:]
		}
		return nil, "", fmt.Errorf("is not a connection URL PostgreSQL accepts: %s", scrub(msg, password))
	}
	// The password is the DSN's or none: not PGPASSWORD nor the
	// server's .pgpass, which pgx would otherwise fall back to and send to
	// a host the client chose.
	cfg.Password = password
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	return cfg, password, nil
}

// scrub removes the password from msg, in each form it may take in a
// URL.
func scrub(msg, password string) string {
	if password == "" {
		return msg
	}
	for _, p := range []string{password, url.QueryEscape(password), url.PathEscape(password), url.UserPassword("", password).String()[1:]} {
		if p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// postgresWriter upserts each unit into one table, in one transaction,
// over a connection of its own kept between units.
type postgresWriter struct {
	mu       sync.Mutex
	cfg      *pgx.ConnConfig
	password string
	table    string // as the job names it
	create   string
	upsert   string
	conn     *pgx.Conn
	// created is set once the table was made sure of on conn.
	created bool
}

func openPostgres(w *herald.Work, opts Options) (*postgresWriter, error) {
	d := &w.Export.Destination
	cfg, password, err := parseDSN(d.DSN)
	if err != nil {
		return nil, &PermanentError{Err: fmt.Errorf("export %s: dsn %s", w.ID, err)}
	}
	cfg.DialFunc = delivery.Dialer(opts.AllowPrivate).DialContext
	if d.Table == "" {
		return nil, &PermanentError{Err: fmt.Errorf("export %s: no table", w.ID)}
	}
	ident := pgx.Identifier(strings.Split(d.Table, "."))
	table := ident.Sanitize()
	set := make([]string, 0, len(columns))
	params := make([]string, len(columns))
	for i, c := range columns {
		params[i] = fmt.Sprintf("$%d", i+1)
		if c != "account_id" && c != "id" {
			set = append(set, c+" = EXCLUDED."+c)
		}
	}
	return &postgresWriter{
		cfg:      cfg,
		password: password,
		table:    d.Table,
		create: `CREATE TABLE IF NOT EXISTS ` + table + ` (
	account_id text NOT NULL,
	id text NOT NULL,
	seq bigint NOT NULL,
	category text NOT NULL,
	type text NOT NULL,
	occurred_at timestamptz NOT NULL,
	received_at timestamptz NOT NULL,
	origin text NOT NULL,
	agent_id text,
	agent_type text,
	core_customer_id text,
	customer_serial_id text,
	host text,
	primary_id text,
	secondary_id text,
	session_id text,
	event_status text,
	event_lifecycle_id text,
	redacted boolean NOT NULL DEFAULT false,
	flags text[],
	hash text,
	data jsonb,
	PRIMARY KEY (account_id, id)
)`,
		upsert: `INSERT INTO ` + table + ` (` + strings.Join(columns, ", ") + `) VALUES (` +
			strings.Join(params, ", ") + `) ON CONFLICT (account_id, id) DO UPDATE SET ` + strings.Join(set, ", "),
	}, nil
}

// batchRows is how many upserts go to the server in one round trip.
const batchRows = 1000

func (p *postgresWriter) Write(ctx context.Context, u *Unit) (json.RawMessage, error) {
	if err := checkUnit(u); err != nil {
		return nil, err
	}
	rows, err := rowsOf(u)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil && p.conn.IsClosed() {
		p.conn, p.created = nil, false
	}
	if p.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return nil, p.fail(u, "connect for", err)
		}
		p.conn = conn
	}
	if !p.created {
		if _, err := p.conn.Exec(ctx, p.create); err != nil {
			return nil, p.fail(u, "create", err)
		}
		p.created = true
	}
	err = pgx.BeginFunc(ctx, p.conn, func(tx pgx.Tx) error {
		for i := 0; i < len(rows); i += batchRows {
			b := &pgx.Batch{}
			for _, r := range rows[i:min(i+batchRows, len(rows))] {
				b.Queue(p.upsert, r.AccountID, r.ID, r.Seq, r.Category, r.Type, r.OccurredAt, r.ReceivedAt,
					r.Origin, null(r.AgentID), null(r.AgentType), null(r.CoreCustomerID), null(r.CustomerSerialID),
					null(r.Host), null(r.PrimaryID), null(r.SecondaryID), null(r.SessionID), null(r.EventStatus),
					null(r.EventLifecycleID), r.Redacted, r.Flags, null(r.Hash), r.Data)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, p.fail(u, "upsert into", err)
	}
	return detail(map[string]any{"table": p.table, "rows": len(rows)}), nil
}

// fail words err without the password, and drops the connection unless
// the server answered (an answer leaves the connection usable).
func (p *postgresWriter) fail(u *Unit, doing string, err error) error {
	var pgErr *pgconn.PgError
	answered := errors.As(err, &pgErr)
	if !answered && p.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.conn.Close(ctx)
		cancel()
		p.conn, p.created = nil, false
	}
	if answered && pgErr.Code == "42P01" {
		// The table went away: make it again on the next try.
		p.created = false
	}
	// A new error, not a wrapped one: pgx's errors carry the config.
	e := fmt.Errorf("export %s: %s table %s: %s", u.Work.ID, doing, p.table, scrub(err.Error(), p.password))
	if permanentPG(err) {
		return &PermanentError{Err: e}
	}
	return e
}

// permanentPG reports whether trying again cannot mend err: a table
// whose columns do not fit, a schema or database that does not exist,
// refused credentials, data the table refuses, a refused address.
func permanentPG(err error) bool {
	var blocked *delivery.BlockedAddressError
	if errors.As(err, &blocked) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch code := pgErr.Code; {
	case len(code) != 5:
		return false
	case code == "42P01": // undefined table: made again on the next try
		return false
	case code == "23502", code == "23514": // not null, check: the table's own rules
		return true
	default:
		switch code[:2] {
		case "42", // syntax error or access rule violation: columns, privileges
			"3F", // invalid schema name
			"3D", // invalid catalog name: no such database
			"28", // invalid authorization
			"22": // data exception
			return true
		}
	}
	return false
}

// null is nil for "", so that what an event lacks is NULL.
func null(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (p *postgresWriter) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.conn.Close(ctx)
	p.conn = nil
	if err != nil {
		return fmt.Errorf("export: close connection to table %s: %s", p.table, scrub(err.Error(), p.password))
	}
	return nil
}
