package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/sqlite"
)

// newSQLiteEnv is newEnv over a real SQLite store, in a file of
// t.TempDir(): every service is the store's, so that what the handlers
// hand it is stored, read back and written to the audit log as a server
// does it. Its accounts and keys are newEnv's.
func newSQLiteEnv(t *testing.T, configure ...func(*Config)) (*env, *sqlite.Store) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, store: newMemStore(), logs: &syncBuffer{}, reg: prometheus.NewRegistry(), clock: testNow}
	newKey := func(id string, scopes []string, bootstrap bool) (*herald.APIKey, string) {
		secret, prefix, hash := herald.NewKeySecret()
		return &herald.APIKey{ID: id, Name: id, Prefix: prefix, Scopes: scopes, Bootstrap: bootstrap, CreatedAt: testNow, Hash: hash}, secret
	}
	for _, a := range []struct {
		account, key string
		to           *string
		bootstrap    bool
	}{
		{herald.DefaultAccountID, "key_boot", &e.boot, true},
		{"acme", "key_admin", &e.admin, false},
		{"other", "key_other", &e.other, false},
	} {
		k, secret := newKey(a.key, []string{herald.ScopeAdmin}, a.bootstrap)
		if err := db.CreateAccount(ctx, &herald.Account{ID: a.account, Name: a.account, CreatedAt: testNow}, k); err != nil {
			t.Fatal(err)
		}
		*a.to = secret
	}
	for _, k := range []struct {
		id    string
		scope string
		to    *string
	}{{"key_ingest", herald.ScopeIngest, &e.ingest}, {"key_read", herald.ScopeRead, &e.read}} {
		key, secret := newKey(k.id, []string{k.scope}, false)
		key.AccountID = "acme"
		if err := db.CreateKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		*k.to = secret
	}
	cfg := Config{
		Accounts: db, Keys: db, Events: db, EventTypes: db, Settings: db, Lifecycles: db, Profiles: db,
		Sessions: db, Visits: db, Audit: db, Subscriptions: db, Deliveries: db, Workflows: db, Work: db,
		Ping:       db.Ping,
		Logger:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: e.reg,
		Now:        e.now,
	}
	for _, f := range configure {
		f(&cfg)
	}
	e.server = NewServer(cfg)
	e.http = httptest.NewServer(e.server)
	t.Cleanup(e.http.Close)
	return e, db
}

// TestSecretsNeverShown makes a workflow, an export and an alert with
// secrets (SMTP password, DSN password, header values) on the SQLite
// store, and checks that no answer and no system event shows them, and
// that a definition read and sent back keeps them in the store.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	e, db := newSQLiteEnv(t, withJsonnet)
	ctx := context.Background()
	show := func(method, path, body string, status int) []byte {
		t.Helper()
		r := e.do(method, path, e.admin, body).wantStatus(t, status)
		noSecrets(t, method+" "+path, r.body)
		return r.body
	}
	// readBack answers GET path with members changed, for a PUT.
	readBack := func(path string, change func(map[string]any)) string {
		t.Helper()
		var def map[string]any
		if err := json.Unmarshal(show("GET", path, "", 200), &def); err != nil {
			t.Fatal(err)
		}
		change(def)
		b, _ := json.Marshal(def)
		return string(b)
	}

	show("POST", "/v1/workflows", vipWorkflow, 201)
	var x, a newJob
	if err := json.Unmarshal(show("POST", "/v1/exports", pgExport, 201), &x); err != nil {
		t.Fatal(err)
	}
	show("POST", "/v1/exports", hookExport, 201)
	if err := json.Unmarshal(show("POST", "/v1/alerts", mailAlert, 201), &a); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/workflows", "/v1/workflows/vip-login", "/v1/exports", "/v1/alerts", "/v1/work", "/v1/work/" + x.ID, "/v1/work/" + a.ID} {
		show("GET", path, "", 200)
	}

	show("PUT", "/v1/workflows/vip-login", readBack("/v1/workflows/vip-login", func(m map[string]any) { m["description"] = "changed" }), 200)
	show("PUT", "/v1/work/"+x.ID, readBack("/v1/work/"+x.ID, func(m map[string]any) { m["name"] = "changed" }), 200)
	show("PUT", "/v1/work/"+a.ID, readBack("/v1/work/"+a.ID, func(m map[string]any) { m["name"] = "changed" }), 200)
	show("POST", "/v1/work/"+a.ID+"/pause", "", 200)

	wf, err := db.FindWorkflow(ctx, "acme", "vip-login")
	if err != nil {
		t.Fatal(err)
	}
	if wf.Description != "changed" || wf.Steps[0].Headers["Authorization"] != headerSecret || wf.Steps[1].SMTP.Password != smtpPassword {
		t.Errorf("stored workflow %+v: step secrets %+v %+v", wf, wf.Steps[0].Headers, wf.Steps[1].SMTP)
	}
	stored, err := db.FindWork(ctx, "acme", x.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Name != "changed" || !strings.Contains(stored.Export.Destination.DSN, ":"+dsnPassword+"@") {
		t.Errorf("stored export %+v: DSN %q", stored, stored.Export.Destination.DSN)
	}
	if stored, err = db.FindWork(ctx, "acme", a.ID); err != nil {
		t.Fatal(err)
	}
	if stored.Name != "changed" || stored.State != herald.WorkPaused || stored.Alert.Target.SMTP.Password != smtpPassword {
		t.Errorf("stored alert %+v: SMTP %+v", stored, stored.Alert.Target.SMTP)
	}

	// The audit log has the changes, and no secret.
	var page struct{ Events []herald.Event }
	body := show("GET", "/v1/audit?system_event_sources="+`%7B%22workflow%22%3A%5B%5D%2C%22work%22%3A%5B%5D%7D`+"&limit=1000", "", 200)
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	verbs := map[string]int{}
	for _, ev := range page.Events {
		verbs[ev.Category+" "+ev.Type]++
	}
	if verbs["workflow created"] != 1 || verbs["workflow updated"] != 1 || verbs["work created"] != 3 || verbs["work updated"] != 3 {
		t.Errorf("system events %v", verbs)
	}
	show("GET", "/v1/audit/verify", "", 200)
}
