package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
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
// It appends by herald.PlanAppend, the rule the real stores follow, so
// lifecycles and profiles behave in handler tests as they do in SQLite.
type memStore struct {
	mu         sync.Mutex
	accounts   map[string]*herald.Account
	keys       map[string]*herald.APIKey // by hash
	events     map[string][]*herald.Event
	byID       map[string]map[string]*herald.Event
	seq        map[string]int64
	types      map[string]map[string]*herald.EventType // by account, then category/type
	settings   map[string]*herald.Settings
	lifecycles map[herald.Ref]*herald.Lifecycle
	profiles   map[herald.Ref]*herald.Profile
	sessions   map[herald.Ref]*herald.Session
	visits     map[herald.Ref]*herald.Visit // by visit id
	auditHead  map[string]string
	subs       subscriptionStore
	flows      workflowStore
	jobs       workStore
	// now is the clock of the subscription store (secrets expire by it).
	now func() time.Time

	keyLookups int
	appends    int
	// failWith, when set, is returned by every service call named in it.
	failWith map[string]error
}

func newMemStore() *memStore {
	return &memStore{
		accounts:   map[string]*herald.Account{},
		keys:       map[string]*herald.APIKey{},
		events:     map[string][]*herald.Event{},
		byID:       map[string]map[string]*herald.Event{},
		seq:        map[string]int64{},
		types:      map[string]map[string]*herald.EventType{},
		settings:   map[string]*herald.Settings{},
		lifecycles: map[herald.Ref]*herald.Lifecycle{},
		profiles:   map[herald.Ref]*herald.Profile{},
		sessions:   map[herald.Ref]*herald.Session{},
		visits:     map[herald.Ref]*herald.Visit{},
		auditHead:  map[string]string{},
		subs:       newSubscriptionStore(),
		flows:      newWorkflowStore(),
		jobs:       newWorkStore(),
		now:        func() time.Time { return testNow },
		failWith:   map[string]error{},
	}
}

// config returns a Config with every service the store serves.
func (m *memStore) config() Config {
	return Config{
		Accounts:   m.accountService(),
		Keys:       m.keyService(),
		Events:     m.eventService(),
		EventTypes: m.eventTypeService(),
		Settings:   m.settingsService(),
		Lifecycles: m.lifecycleService(),
		Profiles:   m.profileService(),
		Sessions:   m.sessionService(),
		Visits:     m.visitService(),
		Audit:      m.auditService(),

		Subscriptions: m.subscriptionService(),
		Deliveries:    m.deliveryService(),
		Workflows:     m.workflowService(),
		Work:          m.workService(),
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
			if err := m.change(ctx, k.AccountID, herald.SubjectAPIKey, k.ID, herald.VerbCreated, nil, keyView{APIKey: k}); err != nil {
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
					if err := m.change(ctx, accountID, herald.SubjectAPIKey, id, herald.VerbDeleted, keyView{APIKey: k}, nil); err != nil {
						return err
					}
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
			return m.appendEvents(batches)
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

// appendEvents reads what herald.KeysOf names, decides by
// herald.PlanAppend and writes the plan, as a store's transaction does.
// Stored events, lifecycles and profiles are never changed in place once
// stored (a change replaces them), so readers may keep what they got.
func (m *memStore) appendEvents(batches []*herald.AppendBatch) error {
	keys := herald.KeysOf(batches)
	st := &herald.AppendState{
		LastSeq:    map[string]int64{},
		Stored:     map[herald.Ref]herald.StoredEvent{},
		Lifecycles: map[herald.Ref]*herald.Lifecycle{},
		Profiles:   map[herald.Ref]*herald.Profile{},
		Sessions:   map[herald.Ref]*herald.Session{},
		Visits:     map[herald.Ref]*herald.Visit{},
		Settings:   map[string]*herald.Settings{},
		AuditHead:  map[string]string{},
	}
	for _, a := range keys.Accounts {
		if _, ok := m.accounts[a]; ok {
			st.LastSeq[a] = m.seq[a]
			st.AuditHead[a] = m.auditHead[a]
			if s, ok := m.settings[a]; ok {
				c := *s
				st.Settings[a] = &c
			}
		}
	}
	for _, r := range keys.Events {
		if e, ok := m.byID[r.AccountID][r.ID]; ok {
			st.Stored[r] = herald.StoredEvent{Seq: e.Seq, ReceivedAt: e.ReceivedAt, Hash: e.Hash, SessionID: e.SessionID}
		}
	}
	for _, r := range keys.Sessions {
		if x, ok := m.sessions[r]; ok {
			st.Sessions[r] = x.Clone()
		}
	}
	for _, r := range keys.Visits {
		for _, v := range m.visits {
			if v.AccountID == r.AccountID && v.EntityID == r.ID && v.Open() {
				st.Visits[r] = v.Clone()
			}
		}
	}
	for _, r := range keys.Lifecycles {
		if l, ok := m.lifecycles[r]; ok {
			st.Lifecycles[r] = l.Clone()
		}
	}
	for _, r := range keys.Profiles {
		if p, ok := m.profiles[r]; ok {
			st.Profiles[r] = p.Clone()
		}
	}
	plan, err := herald.PlanAppend(batches, st, nil)
	if err != nil {
		return err
	}
	// Encode first, so that a failure leaves the store as it was, as a
	// rolled-back transaction would.
	stored := make([]*herald.Event, len(plan.Events))
	for i, e := range plan.Events {
		c := *e
		body, err := herald.MarshalEvent(&c)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", e.ID, err)
		}
		c.Body = body
		stored[i] = &c
	}
	for _, c := range stored {
		if m.byID[c.AccountID] == nil {
			m.byID[c.AccountID] = map[string]*herald.Event{}
		}
		m.byID[c.AccountID][c.ID] = c
		m.events[c.AccountID] = append(m.events[c.AccountID], c)
	}
	maps.Copy(m.seq, plan.LastSeq)
	for _, l := range plan.Lifecycles {
		m.lifecycles[herald.Ref{AccountID: l.AccountID, ID: l.ID}] = l
	}
	for _, p := range plan.Profiles {
		m.profiles[herald.Ref{AccountID: p.AccountID, ID: p.ID}] = p
	}
	for _, x := range plan.Sessions {
		m.sessions[herald.Ref{AccountID: x.AccountID, ID: x.ID}] = x
	}
	for _, v := range plan.Visits {
		m.visits[herald.Ref{AccountID: v.AccountID, ID: v.ID}] = v
	}
	maps.Copy(m.auditHead, plan.AuditHead)
	return nil
}

// change writes the system event of a change made through the API, by
// the actor of ctx, the way a store does: through the append rule, so
// that it is numbered and chained. The caller holds m.mu.
func (m *memStore) change(ctx context.Context, accountID, subjectType, subjectID, verb string, before, after any) error {
	e, err := herald.ChangeEvent(ctx, accountID, subjectType, subjectID, verb, testNow, before, after)
	if err != nil {
		return err
	}
	b := &herald.AppendBatch{AccountID: accountID, Events: []*herald.Event{e}, By: herald.ActorFrom(ctx)}
	if err := m.appendEvents([]*herald.AppendBatch{b}); err != nil {
		return err
	}
	return b.Results[0].Err
}

func matches(e *herald.Event, f herald.EventFilter) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	return e.Seq > f.AfterSeq &&
		eq(f.Category, e.Category) && eq(f.Type, e.Type) && eq(f.EventStatus, e.EventStatus) &&
		eq(f.EventLifecycleID, e.EventLifecycleID) && eq(f.CoreCustomerID, e.CoreCustomerID) &&
		eq(f.EntityID, e.EntityID()) &&
		eq(f.AgentID, e.AgentID) && eq(f.SessionID, e.SessionID) && eq(f.PrimaryID, e.PrimaryID) &&
		eq(f.Origin, e.Origin) &&
		(len(f.Types) == 0 || slices.Contains(f.Types, e.Type)) && herald.MatchSources(f.Sources, e) &&
		(f.OccurredAfter.IsZero() || !e.OccurredAt.Before(f.OccurredAfter)) &&
		(f.OccurredBefore.IsZero() || e.OccurredAt.Before(f.OccurredBefore))
}

// failed returns the error set for call, if any. The caller holds m.mu.
func (m *memStore) failed(call string) error { return m.failWith[call] }

// cloneType returns a deep copy of t, so that neither the store nor its
// callers see the other's changes.
func cloneType(t *herald.EventType) *herald.EventType {
	b, err := json.Marshal(t)
	if err != nil {
		panic(err) // a type always encodes
	}
	var c herald.EventType
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	c.AccountID = t.AccountID
	return &c
}

func (m *memStore) eventTypeService() *mock.EventTypeService {
	return &mock.EventTypeService{
		FindEventTypesFn: func(ctx context.Context, accountID string) ([]*herald.EventType, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindEventTypes"); err != nil {
				return nil, err
			}
			var out []*herald.EventType
			for _, k := range slices.Sorted(maps.Keys(m.types[accountID])) {
				out = append(out, cloneType(m.types[accountID][k]))
			}
			return out, nil
		},
		FindEventTypeFn: func(ctx context.Context, accountID, category, typ string) (*herald.EventType, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindEventType"); err != nil {
				return nil, err
			}
			if t, ok := m.types[accountID][category+"/"+typ]; ok {
				return cloneType(t), nil
			}
			return nil, herald.Errorf(herald.ENOTFOUND, "no event type %s/%s", category, typ)
		},
		CreateEventTypeFn: func(ctx context.Context, t *herald.EventType) error {
			_, err := m.putEventType(t, false)
			return err
		},
		PutEventTypeFn: func(ctx context.Context, t *herald.EventType) (bool, error) {
			return m.putEventType(t, true)
		},
		DeleteEventTypeFn: func(ctx context.Context, accountID, category, typ string) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("DeleteEventType"); err != nil {
				return err
			}
			if _, ok := m.types[accountID][category+"/"+typ]; !ok {
				return herald.Errorf(herald.ENOTFOUND, "no event type %s/%s", category, typ)
			}
			delete(m.types[accountID], category+"/"+typ)
			return nil
		},
	}
}

func (m *memStore) settingsService() *mock.SettingsService {
	return &mock.SettingsService{
		FindSettingsFn: func(ctx context.Context, accountID string) (*herald.Settings, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindSettings"); err != nil {
				return nil, err
			}
			if _, ok := m.accounts[accountID]; !ok {
				return nil, herald.Errorf(herald.ENOTFOUND, "no account %s", accountID)
			}
			if s, ok := m.settings[accountID]; ok {
				c := *s
				return &c, nil
			}
			return herald.DefaultSettings(), nil
		},
		PutSettingsFn: func(ctx context.Context, accountID string, s *herald.Settings) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("PutSettings"); err != nil {
				return err
			}
			before := herald.DefaultSettings()
			if old, ok := m.settings[accountID]; ok {
				before = old
			}
			if err := m.change(ctx, accountID, herald.SubjectSettings, accountID, herald.VerbUpdated, before, s); err != nil {
				return err
			}
			c := *s
			m.settings[accountID] = &c
			return nil
		},
	}
}

func (m *memStore) lifecycleService() *mock.LifecycleService {
	return &mock.LifecycleService{
		FindLifecycleFn: func(ctx context.Context, accountID, id string) (*herald.Lifecycle, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindLifecycle"); err != nil {
				return nil, err
			}
			if l, ok := m.lifecycles[herald.Ref{AccountID: accountID, ID: id}]; ok {
				return l, nil
			}
			return nil, herald.Errorf(herald.ENOTFOUND, "no lifecycle %s", id)
		},
		FindLifecyclesFn: func(ctx context.Context, accountID string, f herald.LifecycleFilter) ([]*herald.Lifecycle, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindLifecycles"); err != nil {
				return nil, err
			}
			if f.Limit <= 0 {
				return nil, fmt.Errorf("limit %d", f.Limit)
			}
			eq := func(want, got string) bool { return want == "" || want == got }
			var out []*herald.Lifecycle
			for r, l := range m.lifecycles {
				if r.AccountID == accountID && l.FirstSeq > f.AfterSeq &&
					eq(f.Category, l.Category) && eq(f.Type, l.Type) && eq(f.Status, l.Status) && eq(f.EntityID, l.EntityID) &&
					(f.Terminal == nil || *f.Terminal == l.Terminal) &&
					(f.OccurredAfter.IsZero() || !l.FirstOccurredAt.Before(f.OccurredAfter)) &&
					(f.OccurredBefore.IsZero() || l.FirstOccurredAt.Before(f.OccurredBefore)) {
					out = append(out, l)
				}
			}
			slices.SortFunc(out, func(a, b *herald.Lifecycle) int { return cmp.Compare(a.FirstSeq, b.FirstSeq) })
			return out[:min(len(out), f.Limit)], nil
		},
	}
}

func (m *memStore) profileService() *mock.ProfileService {
	return &mock.ProfileService{
		FindProfileFn: func(ctx context.Context, accountID, id string) (*herald.Profile, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindProfile"); err != nil {
				return nil, err
			}
			if p, ok := m.profiles[herald.Ref{AccountID: accountID, ID: id}]; ok {
				return p, nil
			}
			return nil, herald.Errorf(herald.ENOTFOUND, "no profile %s", id)
		},
		FindProfilesFn: func(ctx context.Context, accountID string, f herald.ProfileFilter) ([]*herald.Profile, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindProfiles"); err != nil {
				return nil, err
			}
			if f.Limit <= 0 {
				return nil, fmt.Errorf("limit %d", f.Limit)
			}
			var out []*herald.Profile
			for r, p := range m.profiles {
				attr, hasAttr := p.Attributes[f.Attribute]
				if r.AccountID == accountID && p.FirstSeq > f.AfterSeq &&
					(f.SeenAfter.IsZero() || !p.LastSeenAt.Before(f.SeenAfter)) &&
					(f.SeenBefore.IsZero() || p.LastSeenAt.Before(f.SeenBefore)) &&
					(f.Attribute == "" || f.Value == nil || hasAttr && string(attr.Value) == string(f.Value)) {
					out = append(out, p)
				}
			}
			slices.SortFunc(out, func(a, b *herald.Profile) int { return cmp.Compare(a.FirstSeq, b.FirstSeq) })
			return out[:min(len(out), f.Limit)], nil
		},
		EraseProfileFn: func(ctx context.Context, accountID, id string) (int64, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("EraseProfile"); err != nil {
				return 0, err
			}
			return m.erase(accountID, id)
		},
	}
}

// erase deletes a profile and redacts its entity's events and their
// lifecycles, replacing each rather than changing it in place.
func (m *memStore) erase(accountID, id string) (int64, error) {
	ref := herald.Ref{AccountID: accountID, ID: id}
	_, found := m.profiles[ref]
	delete(m.profiles, ref)
	var n int64
	for i, e := range m.events[accountID] {
		if e.EntityID() != id {
			continue
		}
		found = true
		if l, ok := m.lifecycles[herald.Ref{AccountID: accountID, ID: e.EventLifecycleID}]; ok && !l.Redacted {
			c := l.Clone()
			c.Data, c.DataStamps, c.Redacted = nil, map[string]herald.Stamp{}, true
			m.lifecycles[herald.Ref{AccountID: accountID, ID: l.ID}] = c
		}
		if e.Redacted {
			continue
		}
		c := *e
		c.Data, c.Host, c.Redacted = nil, "", true
		body, err := herald.MarshalEvent(&c)
		if err != nil {
			return 0, err
		}
		c.Body = body
		m.events[accountID][i] = &c
		m.byID[accountID][c.ID] = &c
		n++
	}
	if !found {
		return 0, herald.Errorf(herald.ENOTFOUND, "no profile %s", id)
	}
	return n, nil
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
	cfg := e.store.config()
	cfg.Ping = e.store.ping
	cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Registerer = e.reg
	cfg.Now = e.now
	e.store.now = e.now
	cfg.NewID = func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("evt-%04d", n)
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

// sendLogin sends one authentication/login event per status, a minute
// apart from testNow (to the second), for the login lifecycleID of customer, and returns
// their ids. The lifecycle id is left for the type's pointer to supply.
func sendLogin(t *testing.T, e *env, lifecycleID, customer string, statuses ...string) []string {
	t.Helper()
	var ids []string
	for i, status := range statuses {
		body := loginEvent(lifecycleID, customer, status, testNow.Truncate(time.Second).Add(time.Duration(i)*time.Minute))
		var res ingestResult
		e.do("POST", "/v1/events", e.ingest, body).wantStatus(t, 201).json(t, &res)
		ids = append(ids, res.ID)
	}
	return ids
}

// loginEvent is a login event of the built-in type authentication/login.
func loginEvent(lifecycleID, customer, status string, at time.Time) string {
	return event(map[string]any{
		"category": "authentication", "type": "login", "eventStatus": status, "coreCustomerId": customer,
		"occurredAt": at.Format(time.RFC3339Nano),
		"data":       map[string]any{"external_login_id": lifecycleID, "login_method": "otp"},
	})
}

// putEventType is the store's PutEventType, or CreateEventType when
// replace is false.
func (m *memStore) putEventType(t *herald.EventType, replace bool) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	call := "PutEventType"
	if !replace {
		call = "CreateEventType"
	}
	if err := m.failed(call); err != nil {
		return false, err
	}
	types := m.types[t.AccountID]
	if types == nil {
		types = map[string]*herald.EventType{}
		m.types[t.AccountID] = types
	}
	for _, other := range types {
		if other.Type == t.Type && other.Category != t.Category {
			return false, herald.Errorf(herald.ECONFLICT, "type %q is defined in category %q", t.Type, other.Category)
		}
	}
	c := cloneType(t)
	old, ok := types[t.Key()]
	if ok && !replace {
		return false, herald.Errorf(herald.ECONFLICT, "event type %s already exists", t.Key())
	}
	if ok {
		c.CreatedAt = old.CreatedAt
	}
	types[t.Key()] = c
	return !ok, nil
}

// journeyMatches reports whether a session or visit that began with seq,
// at started, of entity, open or not, passes f.
func journeyMatches(f herald.JourneyFilter, seq int64, started time.Time, entity string, open bool) bool {
	return seq > f.AfterSeq && (f.EntityID == "" || f.EntityID == entity) &&
		(f.State == "" || (f.State == herald.JourneyOpen) == open) &&
		(f.StartedAfter.IsZero() || !started.Before(f.StartedAfter)) &&
		(f.StartedBefore.IsZero() || started.Before(f.StartedBefore))
}

func (m *memStore) sessionService() *mock.SessionService {
	return &mock.SessionService{
		FindSessionByIDFn: func(ctx context.Context, accountID, id string) (*herald.Session, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindSessionByID"); err != nil {
				return nil, err
			}
			if x, ok := m.sessions[herald.Ref{AccountID: accountID, ID: id}]; ok {
				return x.Clone(), nil
			}
			return nil, herald.Errorf(herald.ENOTFOUND, "no session %s", id)
		},
		FindSessionsFn: func(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Session, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindSessions"); err != nil {
				return nil, err
			}
			if f.Limit <= 0 {
				return nil, fmt.Errorf("limit %d", f.Limit)
			}
			var out []*herald.Session
			for r, x := range m.sessions {
				if r.AccountID == accountID && journeyMatches(f, x.StartSeq, x.StartedAt, x.EntityID, x.Open()) {
					out = append(out, x.Clone())
				}
			}
			slices.SortFunc(out, func(a, b *herald.Session) int { return cmp.Compare(a.StartSeq, b.StartSeq) })
			return out[:min(len(out), f.Limit)], nil
		},
	}
}

func (m *memStore) visitService() *mock.VisitService {
	return &mock.VisitService{
		FindVisitByIDFn: func(ctx context.Context, accountID, id string) (*herald.Visit, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindVisitByID"); err != nil {
				return nil, err
			}
			if v, ok := m.visits[herald.Ref{AccountID: accountID, ID: id}]; ok {
				return v.Clone(), nil
			}
			return nil, herald.Errorf(herald.ENOTFOUND, "no visit %s", id)
		},
		FindVisitsFn: func(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Visit, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindVisits"); err != nil {
				return nil, err
			}
			if f.Limit <= 0 {
				return nil, fmt.Errorf("limit %d", f.Limit)
			}
			var out []*herald.Visit
			for r, v := range m.visits {
				if r.AccountID == accountID && journeyMatches(f, v.FirstSeq, v.StartedAt, v.EntityID, v.Open()) {
					out = append(out, v.Clone())
				}
			}
			slices.SortFunc(out, func(a, b *herald.Visit) int { return cmp.Compare(a.FirstSeq, b.FirstSeq) })
			return out[:min(len(out), f.Limit)], nil
		},
	}
}

// auditService verifies the chain as a store does: the stored system
// events, in seq order, through herald.AuditVerifier.
func (m *memStore) auditService() *mock.AuditService {
	return &mock.AuditService{
		VerifyAuditFn: func(ctx context.Context, accountID string) (*herald.AuditReport, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("VerifyAudit"); err != nil {
				return nil, err
			}
			if _, ok := m.accounts[accountID]; !ok {
				return nil, herald.Errorf(herald.ENOTFOUND, "no account %s", accountID)
			}
			v := herald.NewAuditVerifier(accountID)
			for _, e := range m.events[accountID] {
				if e.Origin != herald.OriginSystem {
					continue
				}
				if !v.Check(herald.AuditRow{Seq: e.Seq, ID: e.ID, Category: e.Category, Type: e.Type, PrimaryID: e.PrimaryID, Body: e.Body}) {
					break
				}
			}
			return v.Finish(m.auditHead[accountID]), nil
		},
	}
}

// firstVisit returns the id of the account's first visit, "V-none" if it
// has none.
func (e *env) firstVisit(accountID string) string {
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	id, first := "V-none", int64(0)
	for r, v := range e.store.visits {
		if r.AccountID == accountID && (first == 0 || v.FirstSeq < first) {
			id, first = v.ID, v.FirstSeq
		}
	}
	return id
}
