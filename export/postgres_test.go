package export

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
)

// testSchema connects to HERALD_TEST_POSTGRES and creates a schema of
// the test's own, dropped at the end.
func testSchema(t *testing.T) (dsn, schema string, conn *pgx.Conn) {
	t.Helper()
	dsn = os.Getenv("HERALD_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("HERALD_TEST_POSTGRES is not set (postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema = "export_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		_ = conn.Close(context.Background())
	})
	return dsn, schema, conn
}

func TestPostgresUpsert(t *testing.T) {
	t.Parallel()
	dsn, schema, conn := testSchema(t)
	ctx := context.Background()
	events := testEvents(t, "acct_1", 7)
	table := schema + ".events"
	w := testWork("wrk_pg", "acct_1", herald.Destination{Type: herald.DestinationPostgres, DSN: dsn, Table: table})
	wr, err := Open(ctx, w, Options{AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()

	// The same unit twice (a crash before the engine saved its
	// progress), then one that overlaps it: each event is one row.
	for _, unit := range [][]*herald.Event{events, events, events[5:]} {
		raw, err := wr.Write(ctx, &Unit{Work: w, Events: unit})
		if err != nil {
			t.Fatal(err)
		}
		if d := decodeDetail(t, raw); d["table"] != table || d["rows"] != float64(len(unit)) {
			t.Fatalf("detail %s", raw)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != len(events) {
		t.Fatalf("%d rows (%v), want %d", n, err, len(events))
	}

	rows, err := conn.Query(ctx, `SELECT account_id, id, seq, category, type, occurred_at, received_at, origin,
		session_id, redacted, flags, hash, data->>'amount', data->>'note', data IS NULL
		FROM `+table+` ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var (
			account, id, category, typ, origin string
			seq                                int64
			occurred, received                 time.Time
			session, hash, amount, note        *string
			redacted, noData                   bool
			flags                              []string
		)
		if err := rows.Scan(&account, &id, &seq, &category, &typ, &occurred, &received, &origin,
			&session, &redacted, &flags, &hash, &amount, &note, &noData); err != nil {
			t.Fatal(err)
		}
		e := events[i]
		if account != "acct_1" || id != e.ID || seq != e.Seq || category != e.Category || typ != e.Type || origin != e.Origin {
			t.Errorf("row %d: %s %s %d %s/%s %s", i, account, id, seq, category, typ, origin)
		}
		if !occurred.Equal(e.OccurredAt) || !received.Equal(e.ReceivedAt) {
			t.Errorf("row %d times %s %s, want %s %s", i, occurred, received, e.OccurredAt, e.ReceivedAt)
		}
		if (session == nil) != (e.SessionID == "") || (session != nil && *session != e.SessionID) {
			t.Errorf("row %d session_id %v, want %q or NULL", i, session, e.SessionID)
		}
		if (hash == nil) != (e.ChainHash == "") {
			t.Errorf("row %d hash %v", i, hash)
		}
		if redacted != e.Redacted || strings.Join(flags, ",") != strings.Join(e.Flags, ",") {
			t.Errorf("row %d redacted %v flags %v", i, redacted, flags)
		}
		switch {
		case e.Data == nil && !noData:
			t.Errorf("row %d has data, the event has none", i)
		case e.Data != nil && (amount == nil || *amount != fmt.Sprintf("%d.5", i)):
			t.Errorf("row %d data->>'amount' = %v, data %s", i, amount, e.Data)
		case e.Data != nil && (note == nil || *note != "a, \"quoted\"\nline <b>"):
			t.Errorf("row %d data->>'note' = %v", i, note)
		}
		i++
	}
	if err := rows.Err(); err != nil || i != len(events) {
		t.Fatalf("read %d rows: %v", i, err)
	}
}

func TestPostgresPermanentErrors(t *testing.T) {
	t.Parallel()
	dsn, schema, conn := testSchema(t)
	ctx := context.Background()
	events := testEvents(t, "acct_1", 2)
	write := func(dsn, table string, allowPrivate bool) error {
		t.Helper()
		w := testWork("wrk_pg", "acct_1", herald.Destination{Type: herald.DestinationPostgres, DSN: dsn, Table: table})
		wr, err := Open(ctx, w, Options{AllowPrivate: allowPrivate})
		if err != nil {
			t.Fatal(err)
		}
		defer wr.Close()
		_, err = wr.Write(ctx, &Unit{Work: w, Events: events})
		t.Logf("%s: %v", table, err)
		return err
	}

	// A table of that name whose columns do not fit.
	if _, err := conn.Exec(ctx, "CREATE TABLE "+schema+".bad (account_id text, id integer PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := write(dsn, schema+".bad", true); !IsPermanent(err) {
		t.Errorf("table with other columns: %v, want a permanent error", err)
	}
	// A schema that does not exist.
	if err := write(dsn, schema+"_none.events", true); !IsPermanent(err) {
		t.Errorf("missing schema: %v, want a permanent error", err)
	}
	// A loopback address without AllowPrivate.
	err := write(dsn, schema+".events", false)
	if !IsPermanent(err) || !strings.Contains(err.Error(), "refused to connect") {
		t.Errorf("loopback address: %v, want a permanent refusal", err)
	}
	// No database of that name: permanent, and the password is not in
	// the message.
	u, _ := url.Parse(dsn)
	u.User = url.UserPassword(u.User.Username(), "Sup3r:S3cret/pw")
	u.Path = "/nosuchdb_" + schema
	err = write(u.String(), schema+".events", true)
	if !IsPermanent(err) || strings.Contains(err.Error(), "S3cret") {
		t.Errorf("missing database: %v, want a permanent error without the password", err)
	}
	// Nothing listening: retryable.
	u.Host, u.Path = "127.0.0.1:1", "/test"
	err = write(u.String(), schema+".events", true)
	if err == nil || IsPermanent(err) || strings.Contains(err.Error(), "S3cret") || strings.Contains(err.Error(), url.PathEscape("Sup3r:S3cret/pw")) {
		t.Errorf("closed port: %v, want a retryable error without the password", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	const password = "Sup3rS3cret"
	for _, dsn := range []string{
		"postgres://u:" + password + "@db.example.com:5432/app?sslmode=require",
		"postgresql://u@db.example.com/app?application_name=herald&connect_timeout=5",
	} {
		if err := Check(&herald.Destination{Type: herald.DestinationPostgres, DSN: dsn, Table: "t"}); err != nil {
			t.Errorf("%s: %v", dsn, err)
		}
	}
	for _, dsn := range []string{
		"mysql://u:" + password + "@db.example.com/app",
		"host=db.example.com password=" + password,
		"postgres://u:" + password + "@db.example.com/app?sslrootcert=/etc/shadow",
		"postgres://u:" + password + "@db.example.com/app?servicefile=/etc/passwd&service=x",
		"postgres://u:" + password + "@db.example.com/app?connect_timeout=soon",
		"postgres://u:" + password + "@db.example.com/app?sslmode=sometimes",
		"postgres://u:" + password + "@db.example.com:99999999/app",
	} {
		err := Check(&herald.Destination{Type: herald.DestinationPostgres, DSN: dsn, Table: "t"})
		var he *herald.Error
		if !asError(err, &he) || he.Code != herald.EINVALID || len(he.Fields) != 1 || he.Fields[0].Pointer != "/export/destination/dsn" {
			t.Errorf("%s: %v, want EINVALID at /export/destination/dsn", dsn, err)
			continue
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("%s: the error shows the password: %v", dsn, err)
		}
	}
	if err := Check(&herald.Destination{Type: herald.DestinationFiles, Dir: "x", Format: "csv"}); err != nil {
		t.Errorf("files destination: %v", err)
	}
}

func asError(err error, target **herald.Error) bool {
	e, ok := err.(*herald.Error)
	*target = e
	return ok
}

// TestDSNPasswordOnly: the password sent is the DSN's, never the
// server's PGPASSWORD (or .pgpass), which would go to a host the client
// chose.
func TestDSNPasswordOnly(t *testing.T) {
	t.Setenv("PGPASSWORD", "the-servers-own")
	cfg, _, err := parseDSN("postgres://u@db.example.com/app")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Password != "" {
		t.Fatalf("password %q, want none", cfg.Password)
	}
	cfg, _, err = parseDSN("postgres://u:given@db.example.com/app")
	if err != nil || cfg.Password != "given" {
		t.Fatalf("password %q (%v), want the DSN's", cfg.Password, err)
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	msg := "cannot reach postgres://u:p%40ss%2Fw0rd@h/db with p@ss/w0rd (p%40ss%2Fw0rd, p@ss%2Fw0rd)"
	got := scrub(msg, "p@ss/w0rd")
	if strings.Contains(got, "w0rd") {
		t.Fatalf("scrubbed: %s", got)
	}
}
