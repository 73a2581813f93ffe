package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

func testAccounts(t *testing.T, newDB NewDatabase) {
	t.Run("CreateAndFind", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		a, _ := newAccount(t, s, "acme")
		got, err := s.FindAccountByID(t.Context(), "acme")
		if err != nil {
			t.Fatalf("FindAccountByID: %v", err)
		}
		if got.ID != a.ID || got.Name != a.Name || !got.CreatedAt.Equal(a.CreatedAt) {
			t.Errorf("FindAccountByID = %+v, want %+v", got, a)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		_, err := s.FindAccountByID(t.Context(), "nobody")
		wantCode(t, "FindAccountByID(nobody)", err, herald.ENOTFOUND)
	})

	t.Run("FirstKeyStoredWithAccount", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		_, k := newAccount(t, s, "acme")
		got, err := s.FindKeyByHash(t.Context(), k.Hash)
		if err != nil {
			t.Fatalf("FindKeyByHash(first key): %v", err)
		}
		wantKey(t, got, k)
	})

	t.Run("IDTaken", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		k := newKey("acme", "second", baseTime)
		err := s.CreateAccount(t.Context(), &herald.Account{ID: "acme", Name: "Other", CreatedAt: baseTime}, k)
		wantCode(t, "CreateAccount(taken id)", err, herald.ECONFLICT)
		// The key belongs to the same transaction: it must not exist.
		_, err = s.FindKeyByHash(t.Context(), k.Hash)
		wantCode(t, "FindKeyByHash(key of refused account)", err, herald.ENOTFOUND)
		got, err := s.FindAccountByID(t.Context(), "acme")
		if err != nil || got.Name != "Account acme" {
			t.Errorf("FindAccountByID(acme) = %+v, %v; want the first account unchanged", got, err)
		}
	})

	t.Run("FirstKeyHashTaken", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		_, first := newAccount(t, s, "acme")
		k := newKey("globex", "first", baseTime)
		k.Hash = first.Hash
		err := s.CreateAccount(t.Context(), &herald.Account{ID: "globex", Name: "Globex", CreatedAt: baseTime}, k)
		wantCode(t, "CreateAccount(first key hash taken)", err, herald.ECONFLICT)
		// The account belongs to the same transaction: it must not exist.
		_, err = s.FindAccountByID(t.Context(), "globex")
		wantCode(t, "FindAccountByID(refused account)", err, herald.ENOTFOUND)
	})
}

func testKeys(t *testing.T, newDB NewDatabase) {
	t.Run("CreateAndFindByHash", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		k := newKey("acme", "ci", baseTime.Add(time.Second))
		k.Scopes = []string{herald.ScopeAdmin}
		k.Bootstrap = true
		if err := s.CreateKey(t.Context(), k); err != nil {
			t.Fatalf("CreateKey: %v", err)
		}
		got, err := s.FindKeyByHash(t.Context(), k.Hash)
		if err != nil {
			t.Fatalf("FindKeyByHash: %v", err)
		}
		wantKey(t, got, k)
	})

	t.Run("FindByHashNotFound", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		_, err := s.FindKeyByHash(t.Context(), herald.HashKey("hk_not-a-stored-secret"))
		wantCode(t, "FindKeyByHash(unknown)", err, herald.ENOTFOUND)
	})

	t.Run("FindKeysOldestFirst", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		_, first := newAccount(t, s, "acme")
		_, otherFirst := newAccount(t, s, "globex")
		// Stored out of order, so that the order comes from CreatedAt.
		late := newKey("acme", "late", baseTime.Add(2*time.Hour))
		other := newKey("globex", "other", baseTime.Add(30*time.Minute))
		early := newKey("acme", "early", baseTime.Add(time.Hour))
		for _, k := range []*herald.APIKey{late, other, early} {
			if err := s.CreateKey(t.Context(), k); err != nil {
				t.Fatalf("CreateKey(%s): %v", k.Name, err)
			}
		}
		for _, tc := range []struct {
			account string
			want    []*herald.APIKey
		}{
			{"acme", []*herald.APIKey{first, early, late}},
			{"globex", []*herald.APIKey{otherFirst, other}},
			{"nobody", nil},
		} {
			got, err := s.FindKeys(t.Context(), tc.account)
			if err != nil {
				t.Fatalf("FindKeys(%s): %v", tc.account, err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("FindKeys(%s) = %v, want %v", tc.account, keyNames(got), keyNames(tc.want))
				continue
			}
			for i := range got {
				wantKey(t, got[i], tc.want[i])
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		_, acmeFirst := newAccount(t, s, "acme")
		newAccount(t, s, "globex")
		k := newKey("acme", "doomed", baseTime.Add(time.Second))
		if err := s.CreateKey(t.Context(), k); err != nil {
			t.Fatalf("CreateKey: %v", err)
		}

		// Another account cannot delete it, and it keeps working.
		err := s.DeleteKey(t.Context(), "globex", k.ID)
		wantCode(t, "DeleteKey(another account's key)", err, herald.ENOTFOUND)
		if _, err := s.FindKeyByHash(t.Context(), k.Hash); err != nil {
			t.Fatalf("FindKeyByHash after another account's delete: %v", err)
		}

		if err := s.DeleteKey(t.Context(), "acme", k.ID); err != nil {
			t.Fatalf("DeleteKey: %v", err)
		}
		_, err = s.FindKeyByHash(t.Context(), k.Hash)
		wantCode(t, "FindKeyByHash(deleted key)", err, herald.ENOTFOUND)
		keys, err := s.FindKeys(t.Context(), "acme")
		if err != nil {
			t.Fatalf("FindKeys: %v", err)
		}
		if len(keys) != 1 || keys[0].ID != acmeFirst.ID {
			t.Errorf("FindKeys after delete = %v, want only %q", keyNames(keys), acmeFirst.Name)
		}

		err = s.DeleteKey(t.Context(), "acme", k.ID)
		wantCode(t, "DeleteKey(already deleted)", err, herald.ENOTFOUND)
		err = s.DeleteKey(t.Context(), "acme", "key_unknown")
		wantCode(t, "DeleteKey(unknown id)", err, herald.ENOTFOUND)
	})

	t.Run("Conflict", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		_, first := newAccount(t, s, "acme")
		newAccount(t, s, "globex")
		for _, tc := range []struct {
			name   string
			modify func(k *herald.APIKey)
		}{
			{"hash taken", func(k *herald.APIKey) { k.Hash = first.Hash }},
			{"hash taken from another account", func(k *herald.APIKey) { k.Hash = first.Hash; k.AccountID = "globex" }},
			{"id taken", func(k *herald.APIKey) { k.ID = first.ID }},
		} {
			k := newKey("acme", tc.name, baseTime)
			tc.modify(k)
			err := s.CreateKey(t.Context(), k)
			wantCode(t, "CreateKey("+tc.name+")", err, herald.ECONFLICT)
		}
		// The first key is untouched.
		got, err := s.FindKeyByHash(t.Context(), first.Hash)
		if err != nil {
			t.Fatalf("FindKeyByHash(first): %v", err)
		}
		wantKey(t, got, first)
	})
}

// wantKey checks that got holds every stored field of want.
func wantKey(t *testing.T, got, want *herald.APIKey) {
	t.Helper()
	if got.ID != want.ID || got.AccountID != want.AccountID || got.Name != want.Name ||
		got.Prefix != want.Prefix || !slices.Equal(got.Scopes, want.Scopes) ||
		got.Bootstrap != want.Bootstrap || !got.CreatedAt.Equal(want.CreatedAt) || got.Hash != want.Hash {
		t.Errorf("key = %+v,\nwant %+v", got, want)
	}
}

func keyNames(keys []*herald.APIKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name
	}
	return out
}
