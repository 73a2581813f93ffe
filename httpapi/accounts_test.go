package httpapi

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestCreateAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var got struct {
		Account struct{ ID, Name, CreatedAt string }
		Key     struct {
			ID, AccountID, Secret, Prefix string
			Scopes                        []string
		}
	}
	e.do("POST", "/v1/accounts", e.boot, `{"id":"globex","name":"Globex Corp"}`).wantStatus(t, 201).json(t, &got)
	if got.Account.ID != "globex" || got.Account.Name != "Globex Corp" || got.Account.CreatedAt != "2026-01-02T15:04:05.123456Z" {
		t.Errorf("account %+v", got.Account)
	}
	if got.Key.AccountID != "globex" || !slices.Equal(got.Key.Scopes, []string{"admin"}) ||
		!regexp.MustCompile(`^hk_[0-9a-f]{64}$`).MatchString(got.Key.Secret) || !strings.HasPrefix(got.Key.Secret, got.Key.Prefix) {
		t.Errorf("first key %+v", got.Key)
	}
	// The first key is the new account's admin, and sees only that account.
	e.do("POST", "/v1/events", got.Key.Secret, event(nil)).wantStatus(t, 201)
	var keys struct{ Keys []map[string]any }
	e.do("GET", "/v1/keys", got.Key.Secret, "").wantStatus(t, 200).json(t, &keys)
	if len(keys.Keys) != 1 || keys.Keys[0]["id"] != got.Key.ID {
		t.Errorf("new account's keys %v", keys.Keys)
	}
	// Nor does it inherit the bootstrap key's power.
	e.do("POST", "/v1/accounts", got.Key.Secret, `{"name":"x"}`).wantStatus(t, 403)

	// Without an id, one is made.
	e.do("POST", "/v1/accounts", e.boot, `{"name":"Initech"}`).wantStatus(t, 201).json(t, &got)
	if !regexp.MustCompile(`^acc_[0-9a-f]{16}$`).MatchString(got.Account.ID) {
		t.Errorf("made account id %q", got.Account.ID)
	}
}

func TestCreateAccountInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name     string
		body     string
		want     int
		pointers []string
	}{
		{"no name", `{"id":"globex"}`, 400, []string{"/name"}},
		{"blank name", `{"name":"  "}`, 400, []string{"/name"}},
		{"name with spaces around", `{"name":" Globex"}`, 400, []string{"/name"}},
		{"long name", `{"name":"` + strings.Repeat("n", 201) + `"}`, 400, []string{"/name"}},
		{"id not a slug", `{"id":"Globex Corp","name":"Globex"}`, 400, []string{"/id"}},
		{"id starts with a dash", `{"id":"-globex","name":"Globex"}`, 400, []string{"/id"}},
		{"id too long", `{"id":"` + strings.Repeat("a", 65) + `","name":"Globex"}`, 400, []string{"/id"}},
		{"both bad", `{"id":"G!","name":""}`, 400, []string{"/id", "/name"}},
		{"unknown field", `{"name":"Globex","plan":"gold"}`, 400, []string{"/plan"}},
		{"name not a string", `{"name":7}`, 400, []string{"/name"}},
		{"not JSON", `{"name":`, 400, []string{""}},
		{"not an object", `["Globex"]`, 400, []string{""}},
		{"empty body", ``, 400, []string{""}},
		{"two values", `{"name":"a"}{"name":"b"}`, 400, []string{""}},
		{"id taken", `{"id":"acme","name":"Acme again"}`, 409, []string{"/id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.do("POST", "/v1/accounts", e.boot, c.body).wantStatus(t, c.want).problem(t)
			if got := pointers(p); !slices.Equal(got, c.pointers) {
				t.Errorf("pointers %q, want %q (%s)", got, c.pointers, p.Detail)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var made struct {
		ID, Name, Secret, Prefix string
		Scopes                   []string
	}
	e.do("POST", "/v1/keys", e.admin, `{"name":"reporting","scopes":["read"]}`).wantStatus(t, 201).json(t, &made)
	if made.Name != "reporting" || !slices.Equal(made.Scopes, []string{"read"}) || !strings.HasPrefix(made.Secret, "hk_") {
		t.Errorf("made key %+v", made)
	}
	// It works, with its scopes only.
	e.do("GET", "/v1/events", made.Secret, "").wantStatus(t, 200)
	e.do("POST", "/v1/events", made.Secret, event(nil)).wantStatus(t, 403)

	// The list never shows a secret or a hash.
	r := e.do("GET", "/v1/keys", e.admin, "").wantStatus(t, 200)
	if strings.Contains(string(r.body), made.Secret) || strings.Contains(string(r.body), `"secret"`) || strings.Contains(string(r.body), `"hash"`) {
		t.Errorf("key list shows secrets: %s", r.body)
	}
	var list struct{ Keys []struct{ ID string } }
	r.json(t, &list)
	var ids []string
	for _, k := range list.Keys {
		ids = append(ids, k.ID)
	}
	if !slices.Contains(ids, made.ID) || len(ids) != 4 {
		t.Errorf("key ids %v, want acme's three and %s", ids, made.ID)
	}

	// Deleted, it is refused, and gone from the list.
	e.do("DELETE", "/v1/keys/"+made.ID, e.admin, "").wantStatus(t, 204)
	e.do("GET", "/v1/events", made.Secret, "").wantStatus(t, 401)
	e.do("DELETE", "/v1/keys/"+made.ID, e.admin, "").wantStatus(t, 404)
	e.do("GET", "/v1/keys", e.admin, "").wantStatus(t, 200).json(t, &list)
	if len(list.Keys) != 3 {
		t.Errorf("%d keys after the delete, want 3", len(list.Keys))
	}

	// A key cannot delete itself.
	p := e.do("DELETE", "/v1/keys/key_admin", e.admin, "").wantStatus(t, 409).problem(t)
	if !strings.Contains(p.Detail, "cannot delete itself") {
		t.Errorf("detail %q", p.Detail)
	}
	e.do("GET", "/v1/keys", e.admin, "").wantStatus(t, 200)
}

func TestCreateKeyInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name     string
		body     string
		pointers []string
	}{
		{"no scopes", `{"name":"x"}`, []string{"/scopes"}},
		{"empty scopes", `{"scopes":[]}`, []string{"/scopes"}},
		{"unknown scope", `{"scopes":["read","write"]}`, []string{"/scopes/1"}},
		{"repeated scope", `{"scopes":["read","ingest","read"]}`, []string{"/scopes/2"}},
		{"scope not a string", `{"scopes":[1]}`, []string{"/scopes/0"}},
		{"scopes not an array", `{"scopes":"read"}`, []string{"/scopes"}},
		{"long name", `{"name":"` + strings.Repeat("n", 201) + `","scopes":["read"]}`, []string{"/name"}},
		{"unknown field", `{"scopes":["read"],"expires":"never"}`, []string{"/expires"}},
		{"bootstrap cannot be asked for", `{"scopes":["admin"],"bootstrap":true}`, []string{"/bootstrap"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.do("POST", "/v1/keys", e.admin, c.body).wantStatus(t, 400).problem(t)
			if got := pointers(p); !slices.Equal(got, c.pointers) {
				t.Errorf("pointers %q, want %q (%s)", got, c.pointers, p.Detail)
			}
		})
	}
}
