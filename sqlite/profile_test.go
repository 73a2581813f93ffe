package sqlite_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// TestFindProfilesComparesJSONValues checks that an attribute filter
// compares values as JSON, the way PostgreSQL's jsonb does: numbers by
// value, strings after their escapes, objects whatever their key order and
// white space, and never one JSON type for another.
func TestFindProfilesComparesJSONValues(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "herald.db"))
	if err := s.CreateAccount(t.Context(), &herald.Account{ID: "acme", Name: "Acme"}, nil); err != nil {
		t.Fatal(err)
	}
	profile := &herald.EventType{Category: "crm", Type: "profileUpdated", Persist: true, AccountID: "acme"}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var events []*herald.Event
	for i, data := range []string{
		`{"score":1.0,"name":"Ann\u00e9","tags":["a","b"],"address":{"city":"Oslo","zip":"0150"},"flag":true,"none":null}`,
		`{"score":1,"name":"Anné","tags":["b","a"],"address":{"zip":"0150","city":"Oslo","floor":2},"flag":1,"none":"null"}`,
		`{"score":10e-1,"name":"ann\u00e9","tags":["a","b"],"address":{"zip" : "0150", "city" : "Oslo"},"flag":"true"}`,
	} {
		e, err := herald.ParseEvent(fmt.Appendf(nil, `{"id":"e%d","category":"crm","type":"profileUpdated","coreCustomerId":"C%d","data":%s}`, i+1, i+1, data))
		if err != nil {
			t.Fatal(err)
		}
		e.Complete(now, herald.OriginAPI, nil)
		e.Def = profile
		events = append(events, e)
	}
	b := &herald.AppendBatch{AccountID: "acme", Events: events}
	if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		attribute, value string
		want             []string
	}{
		{"score", `1`, []string{"C1", "C2", "C3"}},
		{"score", `1.00`, []string{"C1", "C2", "C3"}},
		{"score", `"1"`, nil},
		{"name", `"Anné"`, []string{"C1", "C2"}},
		{"name", `"Ann\u00e9"`, []string{"C1", "C2"}},
		{"tags", `["a","b"]`, []string{"C1", "C3"}},
		{"tags", `[ "b", "a" ]`, []string{"C2"}},
		{"address", `{"zip":"0150","city":"Oslo"}`, []string{"C1", "C3"}},
		{"flag", `true`, []string{"C1"}},
		{"flag", `1`, []string{"C2"}},
		{"none", `null`, []string{"C1"}},
		{"none", `"null"`, []string{"C2"}},
	} {
		got, err := s.FindProfiles(t.Context(), "acme", herald.ProfileFilter{Attribute: tc.attribute, Value: json.RawMessage(tc.value), Limit: 10})
		if err != nil {
			t.Errorf("FindProfiles(%s = %s): %v", tc.attribute, tc.value, err)
			continue
		}
		var ids []string
		for _, p := range got {
			ids = append(ids, p.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("FindProfiles(%s = %s) = %v, want %v", tc.attribute, tc.value, ids, tc.want)
		}
	}
	_, err := s.FindProfiles(t.Context(), "acme", herald.ProfileFilter{Attribute: "name", Value: json.RawMessage(`{`), Limit: 10})
	if herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("FindProfiles(value not JSON) = %v, want %s", err, herald.EINVALID)
	}
}
