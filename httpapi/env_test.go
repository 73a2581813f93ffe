package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/lockedbuf"
	"github.com/heraldhq/herald/mock"
)

// testNow is the clock of every test server.
var testNow = time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)

// memStore is an in-memory store behind the mock services: enough of a
// store to drive the handlers end to end, with switches to make it fail.
type memStore struct {
	mu       sync.Mutex
	accounts map[string]*herald.Account
	keys     map[string]*herald.APIKey // by hash
	events   map[string][]*herald.Event
	byID     map[string]map[string]*herald.Event
	seq      map[string]int64

	keyLookups int
	appends    int
	// failWith, when set, is returned by every service call named in it.
	failWith map[string]error
}

func newMemStore() *memStore {
	return &memStore{
		accounts: map[string]*herald.Account{},
		keys:     map[string]*herald.APIKey{},
		events:   map[string][]*herald.Event{},
		byID:     map[string]map[string]*herald.Event{},
		seq:      map[string]int64{},
		failWith: map[string]error{},
	}
}

// calls returns how many key lookups and appends the store has served.
func (m *memStore) calls() (keyLookups, appends int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keyLookups, m.appends
}

func (m *memStore) fail(call string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failWith[call] = err
}

func (m *memStore) addKey(accountID, id string, scopes []string, bootstrap bool) string {
	secret, prefix, hash := herald.NewKeySecret()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[hash] = &herald.APIKey{ID: id, AccountID: accountID, Name: id, Prefix: prefix, Scopes: scopes, Bootstrap: bootstrap, CreatedAt: testNow, Hash: hash}
	return secret
}

func (m *memStore) ping(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failWith["Ping"]
}

func (m *memStore) accountService() *mock.AccountService {
	return &mock.AccountService{
		CreateAccountFn: func(ctx context.Context, a *herald.Account, k *herald.APIKey) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failWith["CreateAccount"]; err != nil {
				return err
			}
			if _, ok := m.accounts[a.ID]; ok {
				return herald.Errorf(herald.ECONFLICT, "account %s exists", a.ID)
			}
			m.accounts[a.ID] = a
			m.keys[k.Hash] = k
			return nil
		},
		FindAccountByIDFn: func(ctx context.Context, id string) (*herald.Account, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if a, ok := m.accounts[id]; ok {
				return a, nil
			}
			return nil, herald.Errorf(herald.ENOTFOUND, "no account")
		},
	}
}

func (m *memStore) keyService() *mock.KeyService {
	return &mock.KeyService{
		CreateKeyFn: func(ctx context.Context, k *herald.APIKey) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failWith["CreateKey"]; err != nil {
				return err
			}
			m.keys[k.Hash] = k
			return nil
		},
		FindKeyByHashFn: func(ctx context.Context, hash string) (*herald.APIKey, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.keyLookups++
			if err := m.failWith["FindKeyByHash"]; err != nil {
				return nil, err
			}
			if k, ok := m.keys[hash]; ok {
				return k, nil
			}
			return nil, herald.Errorf(herald.ENOTFOUND, "no key")
		},
		FindKeysFn: func(ctx context.Context, accountID string) ([]*herald.APIKey, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failWith["FindKeys"]; err != nil {
				return nil, err
			}
			var out []*herald.APIKey
			for _, k := range m.keys {
				if k.AccountID == accountID {
					out = append(out, k)
				}
			}
			slices.SortFunc(out, func(a, b *herald.APIKey) int { return strings.Compare(a.ID, b.ID) })
			return out, nil
		},
		DeleteKeyFn: func(ctx context.Context, accountID, id string) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failWith["DeleteKey"]; err != nil {
				return err
			}
			for h, k := range m.keys {
				if k.AccountID == accountID && k.ID == id {
					delete(m.keys, h)
					return nil
				}
			}
			return herald.Errorf(herald.ENOTFOUND, "no key")
		},
	}
}

func (m *memStore) eventService() *mock.EventService {
	return &mock.EventService{
		AppendEventsFn: func(ctx context.Context, batches []*herald.AppendBatch) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.appends++
			if err := m.failWith["AppendEvents"]; err != nil {
				return err
			}
			for _, b := range batches {
				m.appendBatch(b)
			}
			return nil
		},
		FindEventByIDFn: func(ctx context.Context, accountID, id string) (*herald.Event, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failWith["FindEventByID"]; err != nil {
				return nil, err
			}
			if e, ok := m.byID[accountID][id]; ok {
				return e, nil
			}
			return nil, herald.Errorf(herald.ENOTFOUND, "no event")
		},
		FindEventsFn: func(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failWith["FindEvents"]; err != nil {
				return nil, err
			}
			if f.Limit <= 0 {
				return nil, fmt.Errorf("limit %d", f.Limit)
			}
			var out []*herald.Event
			for _, e := range m.events[accountID] {
				if len(out) == f.Limit {
					break
				}
				if matches(e, f) {
					out = append(out, e)
				}
			}
			return out, nil
		},
	}
}

// appendBatch stores b as the contract says, including its ambiguity: in a
// failed atomic batch every event gets ECONFLICT.
func (m *memStore) appendBatch(b *herald.AppendBatch) {
	b.Results = make([]herald.AppendResult, len(b.Events))
	if m.byID[b.AccountID] == nil {
		m.byID[b.AccountID] = map[string]*herald.Event{}
	}
	stored := m.byID[b.AccountID]
	if b.Atomic {
		for _, e := range b.Events {
			if old, ok := stored[e.ID]; ok && old.Hash != e.Hash {
				for i := range b.Results {
					b.Results[i].Err = herald.Errorf(herald.ECONFLICT, "not stored")
				}
				return
			}
		}
	}
	for i, e := range b.Events {
		if old, ok := stored[e.ID]; ok {
			if old.Hash == e.Hash {
				b.Results[i] = herald.AppendResult{Seq: old.Seq, ReceivedAt: old.ReceivedAt, Duplicate: true}
			} else {
				b.Results[i].Err = herald.Errorf(herald.ECONFLICT, "id %s taken", e.ID)
			}
			continue
		}
		m.seq[b.AccountID]++
		c := *e
		c.Seq = m.seq[b.AccountID]
		body, err := herald.MarshalEvent(&c)
		if err != nil {
			b.Results[i].Err = err
			continue
		}
		c.Body = body
		stored[c.ID] = &c
		m.events[b.AccountID] = append(m.events[b.AccountID], &c)
		b.Results[i] = herald.AppendResult{Seq: c.Seq, ReceivedAt: c.ReceivedAt}
	}
}

func matches(e *herald.Event, f herald.EventFilter) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	return e.Seq > f.AfterSeq &&
		eq(f.Category, e.Category) && eq(f.Type, e.Type) && eq(f.EventStatus, e.EventStatus) &&
		eq(f.EventLifecycleID, e.EventLifecycleID) && eq(f.CoreCustomerID, e.CoreCustomerID) &&
		eq(f.AgentID, e.AgentID) && eq(f.SessionID, e.SessionID) && eq(f.PrimaryID, e.PrimaryID) &&
		eq(f.Origin, e.Origin) &&
		(f.OccurredAfter.IsZero() || !e.OccurredAt.Before(f.OccurredAfter)) &&
		(f.OccurredBefore.IsZero() || e.OccurredAt.Before(f.OccurredBefore))
}

// syncBuffer collects output while the test reads it.
type syncBuffer = lockedbuf.Buffer

// env is one test server with its store, keys and logs.
type env struct {
	t      *testing.T
	store  *memStore
	server *Server
	http   *httptest.Server
	logs   *syncBuffer
	reg    *prometheus.Registry

	clockMu sync.Mutex
	clock   time.Time

	// Keys of account "acme": one per scope, and the bootstrap key
	// (admin, of the default account); other is an admin of account "other".
	admin, ingest, read, boot, other string
}

func newEnv(t *testing.T, configure ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, store: newMemStore(), logs: &syncBuffer{}, reg: prometheus.NewRegistry(), clock: testNow}
	for _, id := range []string{herald.DefaultAccountID, "acme", "other"} {
		e.store.accounts[id] = &herald.Account{ID: id, Name: id, CreatedAt: testNow}
	}
	e.admin = e.store.addKey("acme", "key_admin", []string{herald.ScopeAdmin}, false)
	e.ingest = e.store.addKey("acme", "key_ingest", []string{herald.ScopeIngest}, false)
	e.read = e.store.addKey("acme", "key_read", []string{herald.ScopeRead}, false)
	e.boot = e.store.addKey(herald.DefaultAccountID, "key_boot", []string{herald.ScopeAdmin}, true)
	e.other = e.store.addKey("other", "key_other", []string{herald.ScopeAdmin}, false)
	var n int
	var mu sync.Mutex
	cfg := Config{
		Accounts:   e.store.accountService(),
		Keys:       e.store.keyService(),
		Events:     e.store.eventService(),
		Ping:       e.store.ping,
		Logger:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: e.reg,
		Now:        e.now,
		NewID: func() string {
			mu.Lock()
			defer mu.Unlock()
			n++
			return fmt.Sprintf("evt-%04d", n)
		},
	}
	for _, f := range configure {
		f(&cfg)
	}
	e.server = NewServer(cfg)
	e.http = httptest.NewServer(e.server)
	t.Cleanup(e.http.Close)
	return e
}

func (e *env) now() time.Time {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	return e.clock
}

// advance moves the server's clock.
func (e *env) advance(d time.Duration) {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	e.clock = e.clock.Add(d)
}

// response is an answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
	req    *http.Request
}

// do sends a request with the given key ("" for none) and body, and checks
// what every answer must be: a problem for every 4xx/5xx, a request id, and
// a body that matches the OpenAPI document (see checkDocumented).
func (e *env) do(method, path, key, body string, header ...string) *response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &response{status: res.StatusCode, header: res.Header, body: b, req: req}
	if res.StatusCode >= 400 {
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			e.t.Errorf("%s %s: %d with Content-Type %q, want application/problem+json; body %s", method, path, res.StatusCode, ct, b)
		}
		var p Problem
		if err := json.Unmarshal(b, &p); err != nil || p.Status != res.StatusCode || p.Type == "" || p.Title == "" || p.Detail == "" {
			e.t.Errorf("%s %s: %d: not a complete problem (status %d, err %v): %s", method, path, res.StatusCode, p.Status, err, b)
		}
	}
	if res.Header.Get("X-Request-Id") == "" {
		e.t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	checkDocumented(e.t, e.server, r)
	return r
}

// json decodes the body into v.
func (r *response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r *response) problem(t *testing.T) Problem {
	t.Helper()
	var p Problem
	r.json(t, &p)
	return p
}

func (r *response) mediaType() string {
	mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	return mt
}

// wantStatus fails the test unless the answer has the status.
func (r *response) wantStatus(t *testing.T, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", r.req.Method, r.req.URL.RequestURI(), r.status, status, r.body)
	}
	return r
}

// pointers lists the pointers of a problem's errors.
func pointers(p Problem) []string {
	out := make([]string, len(p.Errors))
	for i, f := range p.Errors {
		out[i] = f.Pointer
	}
	return out
}

// event returns a valid event body with the given fields changed; a field
// set to nil is removed.
func event(fields map[string]any) string {
	e := map[string]any{
		"category": "authentication",
		"type":     "userLoggedIn",
		"data":     map[string]any{"method": "password"},
	}
	for k, v := range fields {
		if v == nil {
			delete(e, k)
		} else {
			e[k] = v
		}
	}
	b, _ := json.Marshal(e)
	return string(b)
}
