package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/httpapi"
	"github.com/heraldhq/herald/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is a real Herald API on a SQLite file: the handler
// cmd/herald serve runs, over the store it uses.
type server struct {
	URL   string
	Key   string // an admin key of account acme
	Other string // an admin key of account other
	DB    *sqlite.Store
	Hub   *httpapi.Hub
	http  *httptest.Server
	dir   string
}

// startServer starts a server in a temporary folder; close stops it and
// removes the folder. Examples use it directly, tests through
// newServer.
func startServer() (*server, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "herald-client-")
	if err != nil {
		return nil, err
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, "herald.db"), sqlite.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &server{DB: db, dir: dir}
	for _, a := range []struct {
		account string
		to      *string
	}{{"acme", &s.Key}, {"other", &s.Other}} {
		secret, prefix, hash := herald.NewKeySecret()
		k := &herald.APIKey{ID: "key_" + a.account, Name: "admin", Prefix: prefix, Scopes: []string{herald.ScopeAdmin},
			CreatedAt: time.Now().UTC().Truncate(time.Microsecond), Hash: hash}
		acct := &herald.Account{ID: a.account, Name: a.account, CreatedAt: k.CreatedAt}
		if err := db.CreateAccount(ctx, acct, k); err != nil {
			s.close()
			return nil, err
		}
		*a.to = secret
	}
	s.Hub = httpapi.NewHub()
	s.http = httptest.NewServer(httpapi.NewServer(serverConfig(db, s.Hub)))
	s.URL = s.http.URL
	return s, nil
}

// serverConfig is the Config cmd/herald serve builds, less what needs a
// process around it (group commit, metrics registry, engines): each
// commit wakes the streams through hub, as serve's fan-out does.
func serverConfig(db *sqlite.Store, hub *httpapi.Hub) httpapi.Config {
	return httpapi.Config{
		Accounts: db, Keys: db, Events: db, EventTypes: db, Settings: db, Lifecycles: db, Profiles: db,
		Sessions: db, Visits: db, Audit: db, Subscriptions: db, Deliveries: db, Workflows: db, Work: db,
		Ping:     db.Ping,
		Streams:  hub,
		Appender: notifyingAppender{db, hub},
	}
}

// notifyingAppender appends each request's events and wakes the
// account's streams once they are committed.
type notifyingAppender struct {
	events herald.EventService
	hub    *httpapi.Hub
}

func (a notifyingAppender) Append(ctx context.Context, b *herald.AppendBatch) error {
	err := a.events.AppendEvents(ctx, []*herald.AppendBatch{b})
	if err == nil {
		a.hub.Notify(b.AccountID)
	}
	return err
}

func (s *server) close() {
	if s.Hub != nil {
		s.Hub.Close() // ends the open streams, which the server would wait for
	}
	if s.http != nil {
		s.http.Close()
	}
	s.DB.Close()
	os.RemoveAll(s.dir)
}

// newServer starts a server for one test.
func newServer(t *testing.T) *server {
	t.Helper()
	s, err := startServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

// newClient returns a client of url with key that retries quickly, and
// closes its connections when the test ends.
func newClient(t *testing.T, url, key string, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithBackoff(time.Millisecond, 10*time.Millisecond)}, opts...)
	c := client.New(url, key, opts...)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// counter counts the requests a client sends, by method and path.
type counter struct {
	mu   sync.Mutex
	n    map[string]int
	base http.RoundTripper
}

func newCounter() *counter {
	return &counter{n: map[string]int{}, base: http.DefaultTransport.(*http.Transport).Clone()}
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

func (c *counter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// apiEvents returns the events clients sent to the account of c, by id.
func apiEvents(t *testing.T, c *client.Client) map[string]*herald.Event {
	t.Helper()
	out := map[string]*herald.Event{}
	for e, err := range c.Events(context.Background(), client.EventQuery{Origin: herald.OriginAPI, Limit: 1000}) {
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := out[e.ID]; dup {
			t.Fatalf("event %s listed twice", e.ID)
		}
		out[e.ID] = e
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (last: %s)", what, d, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
