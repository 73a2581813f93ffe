package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/heraldhq/herald"
)

// profileQueryParams are the query parameters of GET /v1/profiles.
var profileQueryParams = []string{
	"seenAfter", "seenBefore", "attribute", "value", "afterSeq", "limit", "next",
}

// profilePage is one page of GET /v1/profiles.
type profilePage struct {
	Profiles []*herald.Profile `json:"profiles"`
	Next     string            `json:"next"`
	HasMore  bool              `json:"hasMore"`
}

// eraseResult answers DELETE /v1/profiles/{id}.
type eraseResult struct {
	ID             string `json:"id"`
	RedactedEvents int64  `json:"redactedEvents"`
}

// parseProfileQuery reads the query of GET /v1/profiles, naming every bad
// parameter at once.
func parseProfileQuery(q url.Values) (herald.ProfileFilter, int, error) {
	var f herald.ProfileFilter
	var limit int
	var value string
	p := &queryParser{q: q}
	p.timeRange("seenAfter", "seenBefore", &f.SeenAfter, &f.SeenBefore)
	p.text("attribute", &f.Attribute)
	p.text("value", &value)
	_, hasAttr := q["attribute"]
	_, hasValue := q["value"]
	switch {
	case hasAttr && !hasValue:
		p.fail("value", "is required with attribute: give the value the attribute must hold")
	case hasValue && !hasAttr:
		p.fail("attribute", "is required with value: name the attribute that must hold it")
	case value != "":
		f.Value = attributeValue(value)
	}
	p.page(&f.AfterSeq, &limit)
	if err := p.err(); err != nil {
		return herald.ProfileFilter{}, 0, err
	}
	return f, limit, nil
}

// attributeValue reads ?value: a JSON value when it is one (42, true,
// "42" for the string), else the text as a string, so that the common
// case, value=alice@example.com, needs no quotes. It is encoded as
// ParseEvent keeps data: compact, without HTML escaping.
func attributeValue(v string) json.RawMessage {
	if json.Valid([]byte(v)) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(v)); err == nil {
			return buf.Bytes()
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // a string always encodes
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// findProfiles answers one page of the account's profiles, in the order
// they were created, paged like GET /v1/events.
func (s *Server) findProfiles(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	f, limit, err := parseProfileQuery(r.URL.Query())
	if err != nil {
		return err
	}
	from := f.AfterSeq
	f.Limit = limit + 1 // one more tells whether there are more
	list, err := s.profiles.FindProfiles(r.Context(), key.AccountID, f)
	if err != nil {
		return fmt.Errorf("find profiles: %w", err)
	}
	var out profilePage
	out.Profiles, out.HasMore, out.Next = pageOf(list, limit, from,
		func(p *herald.Profile) int64 { return p.FirstSeq }, profileOf)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	id := r.PathValue("id")
	notFound := herald.Errorf(herald.ENOTFOUND, "no profile %q in this account", id)
	if id == "" || len(id) > maxFilterLength {
		return notFound // no event could have named it
	}
	p, err := s.profiles.FindProfile(r.Context(), key.AccountID, id)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND:
		return notFound
	case err != nil:
		return fmt.Errorf("find profile %s: %w", id, err)
	}
	writeJSON(w, http.StatusOK, profileOf(p))
	return nil
}

// eraseProfile deletes a profile and redacts the personal data of the
// entity's events (right to erasure). The events keep their envelopes, so
// the record of what happened stays whole.
func (s *Server) eraseProfile(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	id := r.PathValue("id")
	notFound := herald.Errorf(herald.ENOTFOUND, "no profile %q and no events of that entity in this account", id)
	if id == "" || len(id) > maxFilterLength {
		return notFound
	}
	n, err := s.profiles.EraseProfile(r.Context(), key.AccountID, id)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND:
		return notFound
	case err != nil:
		return fmt.Errorf("erase profile %s: %w", id, err)
	}
	writeJSON(w, http.StatusOK, eraseResult{ID: id, RedactedEvents: n})
	return nil
}

// profileOf is a profile as the API shows it: maps that are empty are {},
// never null.
func profileOf(p *herald.Profile) *herald.Profile {
	c := *p
	if c.Attributes == nil {
		c.Attributes = map[string]herald.Attribute{}
	}
	if c.Counts == nil {
		c.Counts = map[string]int64{}
	}
	return &c
}
