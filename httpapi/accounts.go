package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/heraldhq/herald"
)

// maxNameLength bounds account and key names.
const maxNameLength = 200

// keyView is a key as the API shows it: never the hash, and the secret only
// in the answer that created it.
type keyView struct {
	*herald.APIKey
	Secret string `json:"secret,omitempty"`
}

type accountInput struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type accountCreated struct {
	Account *herald.Account `json:"account"`
	Key     keyView         `json:"key"`
}

// createAccount makes an account with its first key, an admin key, whose
// secret is shown in this answer only.
func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) error {
	var in accountInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	var errs []herald.FieldError
	if in.ID != "" {
		if detail := checkSlug(in.ID); detail != "" {
			errs = append(errs, herald.FieldError{Pointer: "/id", Detail: detail})
		}
	}
	if detail := checkName(in.Name, true); detail != "" {
		errs = append(errs, herald.FieldError{Pointer: "/name", Detail: detail})
	}
	if err := fieldErrors(errs); err != nil {
		return err
	}

	now := s.now().UTC().Truncate(timePrecision)
	a := &herald.Account{ID: in.ID, Name: in.Name, CreatedAt: now}
	if a.ID == "" {
		a.ID = herald.NewRandomID("acc_")
	}
	secret, prefix, hash := herald.NewKeySecret()
	k := &herald.APIKey{
		ID: herald.NewRandomID("key_"), AccountID: a.ID, Name: "first admin key",
		Prefix: prefix, Scopes: []string{herald.ScopeAdmin}, CreatedAt: now, Hash: hash,
	}
	if err := s.accounts.CreateAccount(r.Context(), a, k); err != nil {
		if herald.ErrorCode(err) == herald.ECONFLICT {
			return &herald.Error{Code: herald.ECONFLICT, Message: fmt.Sprintf("account %q already exists", a.ID),
				Fields: []herald.FieldError{{Pointer: "/id", Detail: "is taken"}}}
		}
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	writeJSON(w, http.StatusCreated, accountCreated{Account: a, Key: keyView{APIKey: k, Secret: secret}})
	return nil
}

type keyInput struct {
	Name string `json:"name"`
	// Scopes are decoded one by one, so that a bad one is named by index.
	Scopes []json.RawMessage `json:"scopes"`
}

// createKey makes a key in the caller's account.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request) error {
	caller := keyFrom(r.Context())
	var in keyInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	var errs []herald.FieldError
	if detail := checkName(in.Name, false); detail != "" {
		errs = append(errs, herald.FieldError{Pointer: "/name", Detail: detail})
	}
	if len(in.Scopes) == 0 {
		errs = append(errs, herald.FieldError{Pointer: "/scopes", Detail: fmt.Sprintf("is required: give at least one of %s", scopeList(herald.Scopes))})
	}
	var scopes []string
	for i, raw := range in.Scopes {
		p := fmt.Sprintf("/scopes/%d", i)
		var sc string
		err := json.Unmarshal(raw, &sc)
		switch {
		case err != nil:
			errs = append(errs, herald.FieldError{Pointer: p, Detail: "must be a string"})
		case !slices.Contains(herald.Scopes, sc):
			errs = append(errs, herald.FieldError{Pointer: p, Detail: fmt.Sprintf("unknown scope %q (use one of %s)", sc, scopeList(herald.Scopes))})
		case slices.Contains(scopes, sc):
			errs = append(errs, herald.FieldError{Pointer: p, Detail: fmt.Sprintf("repeats %q", sc)})
		}
		scopes = append(scopes, sc)
	}
	if err := fieldErrors(errs); err != nil {
		return err
	}

	secret, prefix, hash := herald.NewKeySecret()
	k := &herald.APIKey{
		ID: herald.NewRandomID("key_"), AccountID: caller.AccountID, Name: in.Name,
		Prefix: prefix, Scopes: scopes, CreatedAt: s.now().UTC().Truncate(timePrecision), Hash: hash,
	}
	if err := s.keys.CreateKey(r.Context(), k); err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	writeJSON(w, http.StatusCreated, keyView{APIKey: k, Secret: secret})
	return nil
}

type keyList struct {
	Keys []keyView `json:"keys"`
}

// listKeys lists the caller's account's keys, without secrets.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	caller := keyFrom(r.Context())
	keys, err := s.keys.FindKeys(r.Context(), caller.AccountID)
	if err != nil {
		return fmt.Errorf("find keys: %w", err)
	}
	out := keyList{Keys: make([]keyView, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyView{APIKey: k})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteKey deletes a key of the caller's account. A key may not delete
// itself: that is how an account would lose its last admin key by a slip,
// and a key that is to go can always be deleted with another admin key.
func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request) error {
	caller := keyFrom(r.Context())
	id := r.PathValue("id")
	if id == caller.ID {
		return herald.Errorf(herald.ECONFLICT, "a key cannot delete itself; delete key %q with another admin key", id)
	}
	if err := s.keys.DeleteKey(r.Context(), caller.AccountID, id); err != nil {
		if herald.ErrorCode(err) == herald.ENOTFOUND {
			return herald.Errorf(herald.ENOTFOUND, "no key %q in this account", id)
		}
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	s.keyCache.forget(caller.AccountID, id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkSlug returns why s is not a valid account id, or "".
func checkSlug(s string) string {
	if len(s) > 64 {
		return "must be at most 64 characters"
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || i > 0 && (r == '-' || r == '_')
		if !ok {
			return "must be a slug: lower-case letters and digits, then also - and _ (such as \"acme-bank\")"
		}
	}
	return ""
}

// checkName returns why s is not a valid name, or "".
func checkName(s string, required bool) string {
	switch {
	case strings.TrimSpace(s) == "" && required:
		return "is required"
	case strings.TrimSpace(s) != s:
		return "must not start or end with white space"
	case utf8.RuneCountInString(s) > maxNameLength:
		return fmt.Sprintf("must be at most %d characters", maxNameLength)
	}
	return ""
}

// fieldErrors returns an EINVALID error listing errs, or nil if there are
// none.
func fieldErrors(errs []herald.FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	msg := errs[0].Pointer + ": " + errs[0].Detail
	if len(errs) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(errs)-1)
	}
	return &herald.Error{Code: herald.EINVALID, Message: msg, Fields: errs}
}
