package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name      string
		method    string
		path      string
		auth      string // the whole Authorization header
		body      string
		want      int
		challenge string // WWW-Authenticate, for 401
		detail    string // part of the problem's detail
	}{
		{"no header", "GET", "/v1/events", "", "", 401, `Bearer realm="herald"`, "Authorization: Bearer <key>"},
		{"basic scheme", "GET", "/v1/events", "Basic dXNlcjpwYXNz", "", 401, `Bearer realm="herald", error="invalid_request"`, "Bearer scheme"},
		{"empty bearer", "GET", "/v1/events", "Bearer ", "", 401, `Bearer realm="herald", error="invalid_token"`, "unknown API key"},
		{"short key", "GET", "/v1/events", "Bearer hk_short", "", 401, `Bearer realm="herald", error="invalid_token"`, "unknown API key"},
		{"unknown key", "GET", "/v1/events", "Bearer hk_" + strings.Repeat("0", 64), "", 401, `Bearer realm="herald", error="invalid_token"`, "unknown API key"},
		{"over-long key", "GET", "/v1/events", "Bearer " + strings.Repeat("k", 300), "", 401, `Bearer realm="herald", error="invalid_token"`, "unknown API key"},
		{"ingest key reads", "GET", "/v1/events", "Bearer " + e.ingest, "", 403, "", `needs a key with the "read" scope`},
		{"ingest key gets one", "GET", "/v1/events/x", "Bearer " + e.ingest, "", 403, "", `"read" scope`},
		{"read key sends", "POST", "/v1/events", "Bearer " + e.read, event(nil), 403, "", `needs a key with the "ingest" scope`},
		{"read key sends batch", "POST", "/v1/events/batch", "Bearer " + e.read, `{"events":[]}`, 403, "", `"ingest" scope`},
		{"ingest key lists keys", "GET", "/v1/keys", "Bearer " + e.ingest, "", 403, "", `"admin" scope`},
		{"read key makes key", "POST", "/v1/keys", "Bearer " + e.read, `{"scopes":["read"]}`, 403, "", `"admin" scope`},
		{"read key deletes key", "DELETE", "/v1/keys/key_ingest", "Bearer " + e.read, "", 403, "", `"admin" scope`},
		{"admin key makes account", "POST", "/v1/accounts", "Bearer " + e.admin, `{"name":"x"}`, 403, "", "only the bootstrap key"},
		{"admin key reads", "GET", "/v1/events", "Bearer " + e.admin, "", 200, "", ""},
		{"admin key sends", "POST", "/v1/events", "Bearer " + e.admin, event(nil), 201, "", ""},
		{"scheme in lower case", "GET", "/v1/events", "bearer " + e.read, "", 200, "", ""},
		{"public route ignores a bad key", "GET", "/healthz", "Bearer nonsense", "", 200, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, "", c.body, "Authorization", c.auth).wantStatus(t, c.want)
			if got := r.header.Get("WWW-Authenticate"); got != c.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
			if c.detail != "" {
				if p := r.problem(t); !strings.Contains(p.Detail, c.detail) {
					t.Errorf("detail %q does not contain %q", p.Detail, c.detail)
				}
			}
		})
	}
	logs := e.logs.String()
	for _, c := range cases {
		if _, secret, _ := strings.Cut(c.auth, " "); len(secret) > 8 && strings.Contains(logs, secret) {
			t.Errorf("%s: the Authorization header's value is in the logs", c.name)
		}
	}
}

func TestKeyCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lookups := func() int {
		n, _ := e.store.calls()
		return n
	}
	read := func(key string, want int) {
		t.Helper()
		e.do("GET", "/v1/events", key, "").wantStatus(t, want)
	}

	read(e.read, 200)
	read(e.read, 200)
	if n := lookups(); n != 1 {
		t.Errorf("two requests within the TTL made %d lookups, want 1", n)
	}
	e.advance(DefaultKeyCacheTTL)
	read(e.read, 200)
	if n := lookups(); n != 2 {
		t.Errorf("a request after the TTL made %d lookups in all, want 2", n)
	}

	// Unknown keys are remembered too.
	unknown := "hk_" + strings.Repeat("1", 64)
	read(unknown, 401)
	read(unknown, 401)
	if n := lookups(); n != 3 {
		t.Errorf("two requests with one unknown key made %d lookups in all, want 3", n)
	}

	// A key deleted through this server is refused at once.
	read(e.ingest, 403)
	e.do("DELETE", "/v1/keys/key_read", e.admin, "").wantStatus(t, 204)
	read(e.read, 401)

	// Store errors are not remembered.
	before := lookups()
	e.store.fail("FindKeyByHash", context.DeadlineExceeded)
	e.advance(DefaultKeyCacheTTL)
	read(e.admin, 500)
	e.store.fail("FindKeyByHash", nil)
	read(e.admin, 200)
	if n := lookups() - before; n != 2 {
		t.Errorf("a failed lookup and the next made %d lookups, want 2", n)
	}
}

func TestKeyCacheOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.KeyCacheTTL = -1 })
	for range 3 {
		e.do("GET", "/v1/events", e.read, "").wantStatus(t, 200)
	}
	if n, _ := e.store.calls(); n != 3 {
		t.Errorf("3 requests without a cache made %d lookups, want 3", n)
	}
}

func TestKeyCacheBounded(t *testing.T) {
	t.Parallel()
	m := newMemStore()
	now := testNow
	c := newKeyCache(m.keyService(), time.Minute, 10, func() time.Time { return now })
	for i := range 25 {
		if _, err := c.find(context.Background(), strings.Repeat("x", i+1)); herald.ErrorCode(err) != herald.ENOTFOUND {
			t.Fatalf("find: %v", err)
		}
		if n := len(c.entries); n > 10 {
			t.Fatalf("cache holds %d entries, bound is 10", n)
		}
	}
}

func TestAccountIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := event(map[string]any{"id": "shared-id"})
	e.do("POST", "/v1/events", e.ingest, body).wantStatus(t, 201)
	// The same id in another account is another event.
	e.do("POST", "/v1/events", e.other, event(map[string]any{"id": "shared-id", "type": "other"})).wantStatus(t, 201)
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"id": "acme-only"})).wantStatus(t, 201)

	e.do("GET", "/v1/events/acme-only", e.other, "").wantStatus(t, 404)
	var got map[string]any
	e.do("GET", "/v1/events/shared-id", e.other, "").wantStatus(t, 200).json(t, &got)
	if got["type"] != "other" {
		t.Errorf("other account read %v, want its own event", got)
	}
	var page struct{ Events []map[string]any }
	e.do("GET", "/v1/events", e.other, "").wantStatus(t, 200).json(t, &page)
	if len(page.Events) != 1 {
		t.Errorf("other account lists %d events, want its 1", len(page.Events))
	}
	var keys struct{ Keys []map[string]any }
	e.do("GET", "/v1/keys", e.other, "").wantStatus(t, 200).json(t, &keys)
	if len(keys.Keys) != 1 || keys.Keys[0]["id"] != "key_other" {
		t.Errorf("other account lists keys %v, want only its own", keys.Keys)
	}
	e.do("DELETE", "/v1/keys/key_ingest", e.other, "").wantStatus(t, 404)
}
