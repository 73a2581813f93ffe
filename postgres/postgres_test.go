package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/postgres"
	"github.com/heraldhq/herald/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serverURL returns the URL of the test server, or skips the test.
func serverURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("HERALD_TEST_POSTGRES")
	if u == "" {
		tb.Skip("HERALD_TEST_POSTGRES is not set: set it to a PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL store tests")
	}
	return u
}

// newSchema creates a schema of its own for one test, dropped when the test
// ends, and returns a URL whose connections use it.
func newSchema(tb testing.TB) string {
	tb.Helper()
	base := serverURL(tb)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "herald_test_" + hex.EncodeToString(b)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to HERALD_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	// Registered first, so it runs after the stores are closed.
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})

	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// A key=value connection string.
		return base + " search_path=" + schema
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// open opens a store on dbURL, closed when the test ends.
func open(tb testing.TB, dbURL string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), dbURL, postgres.Options{MaxConns: 4})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func newDB(t *testing.T) storetest.Opener {
	dbURL := newSchema(t)
	return func() storetest.Store { return open(t, dbURL) }
}

func TestStore(t *testing.T) {
	serverURL(t)
	storetest.Run(t, newDB)
}

// Processes that start together must not race on the migrations.
func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	dbURL := newSchema(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), dbURL, postgres.Options{MaxConns: 2})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}

	// Each migration is recorded once, and opening again applies nothing.
	open(t, dbURL)
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var versions []string
	rows, _ := conn.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	versions, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0001_init", "0002_types_lifecycles_profiles", "0003_sessions_visits_audit", "0004_subscriptions", "0005_workflows_work"}; !slices.Equal(versions, want) {
		t.Errorf("schema_migrations = %v, want %v", versions, want)
	}
}

func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(t.Context(), "postgres://user:secret@127.0.0.1:5432/db?sslmode=bogus", postgres.Options{})
	if err == nil {
		t.Fatal("Open with a bad URL: no error")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows the password: %v", err)
	}
}

// PostgreSQL's text refuses NUL and invalid UTF-8, which a client can put
// in a string field. Such an event is refused on its own: it must not
// fail the transaction, and with it the other requests of a group commit.
// Data may hold anything JSON allows: the body is stored as bytes.
func TestTextPostgresRefuses(t *testing.T) {
	t.Parallel()
	s := open(t, newSchema(t))
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := s.CreateAccount(ctx, &herald.Account{ID: "acme", CreatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	parse := func(raw string) *herald.Event {
		t.Helper()
		e, err := herald.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatalf("ParseEvent(%q): %v", raw, err)
		}
		e.Complete(now, herald.OriginAPI, nil)
		return e
	}
	err := s.CreateAccount(ctx, &herald.Account{ID: "globex", Name: "G\x00", CreatedAt: now}, nil)
	if herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("CreateAccount(NUL in name): %v, want EINVALID", err)
	}
	// ParseEvent refuses both of these; the store must still defend
	// itself against callers that build events another way.
	nul := parse(`{"id":"nul","category":"c","type":"t"}`)
	nul.AgentID = "a\x00b"
	binary := parse(`{"id":"bin","category":"c","type":"t"}`)
	binary.Data = []byte("{\"k\":\"\xff\xfe \\u0000\"}")
	other := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{parse(`{"id":"ok","category":"c","type":"t"}`)}}
	b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{nul, binary}}
	if err := s.AppendEvents(ctx, []*herald.AppendBatch{b, other}); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	if r := b.Results[0]; herald.ErrorCode(r.Err) != herald.EINVALID {
		t.Errorf("event with NUL in agentId: result %+v, want EINVALID", r)
	}
	// Seq 1 is the system event account created.
	if r := b.Results[1]; r.Err != nil || r.Seq != 2 {
		t.Errorf("event with binary data: result %+v, want stored with seq 2", r)
	}
	if r := other.Results[0]; r.Err != nil || r.Seq != 3 {
		t.Errorf("other batch: result %+v, want stored with seq 3", r)
	}
	got, err := s.FindEventByID(ctx, "acme", "bin")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != string(binary.Body) || !strings.Contains(string(got.Body), "\xff\xfe") {
		t.Errorf("body = %q, want %q", got.Body, binary.Body)
	}
	// Looking up such values finds nothing, and is no error.
	if _, err := s.FindEventByID(ctx, "acme", "a\x00"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("FindEventByID(NUL id): %v, want ENOTFOUND", err)
	}
	list, err := s.FindEvents(ctx, "acme", herald.EventFilter{AgentID: "a\x00b", Limit: 10})
	if err != nil || len(list) != 0 {
		t.Errorf("FindEvents(agent with NUL) = %d events, %v; want none", len(list), err)
	}
}

// Two nodes that receive the same events at once must answer "stored" to
// one and "duplicate" to the other, never fail on the unique index: the
// account lock is taken before the duplicate lookup. That holds also when
// the server's default isolation level is not READ COMMITTED.
func TestSameEventsFromTwoNodes(t *testing.T) {
	t.Parallel()
	for _, isolation := range []string{"", "serializable"} {
		t.Run("isolation="+isolation, func(t *testing.T) {
			t.Parallel()
			dbURL := newSchema(t)
			if isolation != "" {
				sep := "&"
				if !strings.Contains(dbURL, "://") {
					sep = " " // a key=value connection string
				}
				dbURL += sep + "default_transaction_isolation=" + isolation
			}
			testSameEventsFromTwoNodes(t, dbURL)
		})
	}
}

func testSameEventsFromTwoNodes(t *testing.T, dbURL string) {
	nodes := []*postgres.Store{open(t, dbURL), open(t, dbURL)}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := nodes[0].CreateAccount(t.Context(), &herald.Account{ID: "acme", CreatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	const (
		senders = 6
		events  = 100
	)
	results := make([][]herald.AppendResult, senders)
	errs := make([]error, senders)
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			for i := range events {
				// All in the same order, so that they collide.
				id := fmt.Sprintf("ev-%d", i)
				e, err := herald.ParseEvent([]byte(`{"id":"` + id + `","category":"c","type":"t"}`))
				if err != nil {
					errs[w] = err
					return
				}
				e.Complete(now, herald.OriginAPI, nil)
				b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{e}}
				if err := nodes[w%2].AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil {
					errs[w] = fmt.Errorf("%s: %w", id, err)
					return
				}
				results[w] = append(results[w], b.Results[0])
			}
		})
	}
	wg.Wait()
	stored := 0
	for w := range senders {
		if errs[w] != nil {
			t.Fatalf("sender %d: %v", w, errs[w])
		}
		for _, r := range results[w] {
			switch {
			case r.Err != nil:
				t.Errorf("sender %d: %v", w, r.Err)
			case !r.Duplicate:
				stored++
			}
		}
	}
	if stored != events {
		t.Errorf("%d events stored, want %d (one per id)", stored, events)
	}
	// Seq 1 is the system event account created.
	list, err := nodes[1].FindEvents(t.Context(), "acme", herald.EventFilter{Origin: herald.OriginAPI, Limit: 1000})
	if err != nil || len(list) != events || list[0].Seq != 2 || list[events-1].Seq != events+1 {
		t.Errorf("FindEvents = %d events, %v; want %d with seqs 2 to %d", len(list), err, events, events+1)
	}
}

// BenchmarkAppendEvents measures the store alone: one account, calls of
// one batch. Run with -benchtime to taste; b.N counts events.
func BenchmarkAppendEvents(b *testing.B) {
	for _, size := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := open(b, newSchema(b))
			ctx := context.Background()
			now := time.Now().UTC().Truncate(time.Microsecond)
			if err := s.CreateAccount(ctx, &herald.Account{ID: "bench", CreatedAt: now}, nil); err != nil {
				b.Fatal(err)
			}
			events := make([]*herald.Event, b.N)
			for i := range events {
				raw := fmt.Sprintf(`{"id":"ev-%d","category":"transfers","type":"singleTransferCreated",`+
					`"coreCustomerId":"cust-%d","sessionId":"sess-%d","eventStatus":"attempted",`+
					`"data":{"amount":"%d.00","currency":"EUR","memo":"benchmark event"}}`, i, i%1000, i%5000, i)
				e, err := herald.ParseEvent([]byte(raw))
				if err != nil {
					b.Fatal(err)
				}
				e.Complete(now, herald.OriginAPI, nil)
				events[i] = e
			}
			b.ResetTimer()
			for start := 0; start < len(events); start += size {
				batch := &herald.AppendBatch{AccountID: "bench", Events: events[start:min(start+size, len(events))]}
				if err := s.AppendEvents(ctx, []*herald.AppendBatch{batch}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkAppendEventsAccounts measures appends to several accounts at
// once, each by a writer of its own, as a server's committer runs them
// (four workers on PostgreSQL). Commits to different accounts take no lock
// in common but the one PostgreSQL takes to queue notifications (see
// Store.Listen). b.N counts events.
func BenchmarkAppendEventsAccounts(b *testing.B) {
	const writers = 4
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("writers=%d/batch=%d", writers, size), func(b *testing.B) {
			s := open(b, newSchema(b))
			ctx := context.Background()
			now := time.Now().UTC().Truncate(time.Microsecond)
			events := make([][]*herald.Event, writers)
			for w := range writers {
				account := fmt.Sprintf("bench-%d", w)
				if err := s.CreateAccount(ctx, &herald.Account{ID: account, CreatedAt: now}, nil); err != nil {
					b.Fatal(err)
				}
				for i := w; i < b.N; i += writers {
					e, err := herald.ParseEvent([]byte(fmt.Sprintf(`{"id":"ev-%d","category":"transfers","type":"singleTransferCreated",`+
						`"coreCustomerId":"cust-%d","data":{"amount":"%d.00","currency":"EUR"}}`, i, i%1000, i)))
					if err != nil {
						b.Fatal(err)
					}
					e.Complete(now, herald.OriginAPI, nil)
					events[w] = append(events[w], e)
				}
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			errs := make([]error, writers)
			for w := range writers {
				wg.Go(func() {
					list := events[w]
					for start := 0; start < len(list); start += size {
						batch := &herald.AppendBatch{AccountID: fmt.Sprintf("bench-%d", w), Events: list[start:min(start+size, len(list))]}
						if err := s.AppendEvents(ctx, []*herald.AppendBatch{batch}); err != nil {
							errs[w] = err
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
