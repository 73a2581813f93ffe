package herald_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// readmeEvents are event bodies from the README's examples, as a client
// sends them.
var readmeEvents = []string{
	`{
  "category":"authentication","type":"login","eventStatus":"attempted","coreCustomerId":"cust-42",
  "data":{"external_login_id":"lg-1","ip_address":"203.0.113.7","login_method":"password"}}`,
	`{"category":"authentication","type":"login","eventStatus":"succeeded","coreCustomerId":"cust-42",
  "data":{"external_login_id":"lg-1","ip_address":"203.0.113.7","login_method":"otp"}}`,
	`{"category":"transactions","type":"transaction","eventStatus":"settled",
  "data":{"external_transaction_id":"tx-1","amount":"12,50"}}`,
	`{"id":"login-1","category":"authentication","type":"userLoggedIn","coreCustomerId":"cust-42"}`,
	`{"id":"view-1","category":"accounts","type":"balanceViewed","coreCustomerId":"cust-42","sessionId":"01a227dd-528a-7188-9a1b-5c3e1f2a3b4c"}`,
	`{"id":"logout-1","category":"authentication","type":"userLoggedOut","coreCustomerId":"cust-42","sessionId":"01a227dd-528a-7188-9a1b-5c3e1f2a3b4c"}`,
}

// clientForm is e as a client would send it again: the stored encoding
// without the fields only the server sets, and without the defaults
// ParseEvent left unset (no id, no occurredAt).
func clientForm(t *testing.T, e *herald.Event) []byte {
	t.Helper()
	body, err := herald.MarshalEvent(e)
	if err != nil {
		t.Fatalf("accepted event does not marshal: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("marshalled event is not a JSON object: %v\n%s", err, body)
	}
	for _, k := range []string{"seq", "receivedAt", "origin", "redacted", "flags", "hash"} {
		delete(m, k)
	}
	if e.ID == "" {
		delete(m, "id")
	}
	if e.OccurredAt.IsZero() {
		delete(m, "occurredAt")
	}
	// Without HTML escaping, as MarshalEvent writes data.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(buf.Bytes())
}

// FuzzParseEvent: whatever the bytes, ParseEvent answers an EINVALID or
// ETOOLARGE error or a complete event; an accepted event sent again (as
// encoded, or re-indented) parses to the same event with the same content
// hash; and its stored form, which carries server fields, is refused as
// client input.
func FuzzParseEvent(f *testing.F) {
	for _, s := range readmeEvents {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"category":"c","type":"t"}`,
		`{"id":"a","category":"authentication","type":"userLoggedIn","occurredAt":"2026-01-01T00:00:00Z","data":{"x":[1,2,{"y":null}]}}`,
		`{"category":"c","type":"t","occurredAt":"2026-01-02T15:04:05.123456789+01:00","event_lifecycle_id":"lc-1","event_status":"ok"}`,
		`{"category":"c","type":"t","data":{"s":"\u00e9\ud83d\ude00<&>","n":1.50e3,"z":null,"b":true,"a":[]}}`,
		`{"category":"c","type":"t","host":"h","agentId":"a","agentType":"customer","customerSerialId":"9","primaryId":"p","secondaryId":"s"}`,
		`{"event_status":"a","eventStatus":"b"}`,
		`{"category":"c","type":"t","seq":1}`,
		`{"data":1e999}`,
		`[]`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	// One event of every built-in type, with its first status and its
	// lifecycle id in data.
	for _, et := range herald.BuiltinEventTypes() {
		m := map[string]any{"category": et.Category, "type": et.Type}
		if len(et.Statuses) > 0 {
			m["eventStatus"] = et.Statuses[0].Name
		}
		if p, ok := strings.CutPrefix(et.LifecycleIDPointer, "/data/"); ok && !strings.Contains(p, "/") {
			m["data"] = map[string]any{p: "lc-1"}
		}
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := herald.ParseEvent(b)
		if err != nil {
			if c := herald.ErrorCode(err); c != herald.EINVALID && c != herald.ETOOLARGE {
				t.Fatalf("ParseEvent error code %s, want EINVALID or ETOOLARGE: %v", c, err)
			}
			if e != nil {
				t.Fatalf("ParseEvent returned an event with its error %v", err)
			}
			return
		}
		if e.Category == "" || e.Type == "" || len(e.Hash) != 64 {
			t.Fatalf("accepted an event without category, type or hash: %+v", e)
		}
		if e.Data != nil && !json.Valid(e.Data) {
			t.Fatalf("accepted data that is not JSON: %q", e.Data)
		}

		again := clientForm(t, e)
		var indented bytes.Buffer
		if err := json.Indent(&indented, again, "", "\t"); err != nil {
			t.Fatal(err)
		}
		for _, form := range [][]byte{again, indented.Bytes()} {
			e2, err := herald.ParseEvent(form)
			if err != nil {
				t.Fatalf("re-encoded event is refused: %v\ninput: %q\nre-encoded: %s", err, b, form)
			}
			if e2.Hash != e.Hash {
				t.Fatalf("content hash changed on a round trip: %s, then %s\ninput: %q\nre-encoded: %s", e.Hash, e2.Hash, b, form)
			}
			if !e2.OccurredAt.Equal(e.OccurredAt) {
				t.Fatalf("occurredAt changed on a round trip: %v, then %v", e.OccurredAt, e2.OccurredAt)
			}
			// The same instant, perhaps written in another zone.
			e2.OccurredAt = e.OccurredAt
			if !reflect.DeepEqual(e, e2) {
				t.Fatalf("event changed on a round trip:\n%+v\n%+v", e, e2)
			}
		}

		e.Complete(time.Now(), herald.OriginAPI, func() string { return "id" })
		body, err := herald.MarshalEvent(e)
		if err != nil {
			t.Fatalf("completed event does not marshal: %v", err)
		}
		if !json.Valid(body) {
			t.Fatalf("stored body is not JSON: %s", body)
		}
		if _, err := herald.ParseEvent(body); err == nil {
			t.Fatal("a stored body parses as client input, but it carries server fields")
		}
	})
}

// filterEvents are events a filter is matched against: a client event
// and a system event, with the fuzzer's fields in a third.
func filterEvents(category, typ, status, entity, primaryID string, system bool) []*herald.Event {
	fuzzed := &herald.Event{Category: category, Type: typ, EventStatus: status,
		CoreCustomerID: entity, PrimaryID: primaryID, Origin: herald.OriginAPI}
	if system {
		fuzzed.Origin = herald.OriginSystem
	}
	return []*herald.Event{
		fuzzed,
		{Category: "transactions", Type: "transaction", EventStatus: "failed", CoreCustomerID: "cust-42",
			PrimaryID: "tx-1", Origin: herald.OriginAPI},
		{Category: "work", Type: "failed", PrimaryID: "work-id-1", AgentID: "cust-7", AgentType: "Customer",
			Origin: herald.OriginSystem},
	}
}

// FuzzFilter: any filter JSON decodes or is refused without a panic; a
// filter that validates can be applied to a store query and matched, and
//   - the store query it makes never leaves out an event it matches
//     (ApplyTo only narrows as far as Match does);
//   - it matches the same events after a JSON round trip.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		// The Lytics document's filters, and the README's.
		`{"system_event_multiple_types": ["updated", "created", "failed"]}`,
		`{"system_event_type": "failed"}`,
		`{"system_event_multiple_types": ["updated", "created", "failed"], "system_event_sources": {"work": ["work-id-1", "work-id-2"]}}`,
		`{"system_event_multiple_types": ["updated", "created", "failed"], "system_event_sources": {"work": []}}`,
		`{"types":["single*"],"statuses":["succeeded"]}`,
		`{"origin": "api"}`,
		`{"origin": "system"}`,
		`{"types": ["transactions/transaction"], "statuses": ["failed", "denied"]}`,
		`{"categories":["transactions","authentication"],"entity":"cust-42","types":["trans*/*"]}`,
		`{"types":["[a-","\\"]}`,
		`{"origin":"api","system_event_type":"failed"}`,
		`{}`,
	} {
		f.Add([]byte(s), "transfers", "singleTransferCreated", "succeeded", "cust-42", "tx-9", false)
	}
	f.Add([]byte(`{"system_event_sources":{"work":null}}`), "work", "failed", "", "", "work-id-2", true)

	f.Fuzz(func(t *testing.T, raw []byte, category, typ, status, entity, primaryID string, system bool) {
		var flt herald.Filter
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields() // as the API decodes it
		if dec.Decode(&flt) != nil {
			return
		}
		events := filterEvents(category, typ, status, entity, primaryID, system)
		if err := flt.Validate("/filter"); err != nil {
			if herald.ErrorCode(err) != herald.EINVALID {
				t.Fatalf("Validate error code %s: %v", herald.ErrorCode(err), err)
			}
			for _, e := range events {
				flt.Match(e) // an invalid filter is never used, but must not panic
			}
			return
		}

		var ef herald.EventFilter
		flt.ApplyTo(&ef)
		for _, e := range events {
			if !flt.Match(e) {
				continue
			}
			if why := excludes(&ef, e); why != "" {
				t.Fatalf("filter %s matches %+v but its store query leaves it out: %s (%+v)", raw, e, why, ef)
			}
		}

		b, err := json.Marshal(&flt)
		if err != nil {
			t.Fatalf("valid filter does not marshal: %v", err)
		}
		var back herald.Filter
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("marshalled filter does not decode: %v\n%s", err, b)
		}
		if err := back.Validate("/filter"); err != nil {
			t.Fatalf("filter is invalid after a round trip: %v\n%s", err, b)
		}
		for _, e := range events {
			if flt.Match(e) != back.Match(e) {
				t.Fatalf("filter %s matches %+v: %v; after a round trip (%s): %v", raw, e, flt.Match(e), b, back.Match(e))
			}
		}
	})
}

// excludes says why a store reading with ef would not return e, or "".
// It is the store's side of the EventFilter fields ApplyTo sets.
func excludes(ef *herald.EventFilter, e *herald.Event) string {
	switch {
	case ef.Origin != "" && ef.Origin != e.Origin:
		return "origin"
	case ef.EntityID != "" && ef.EntityID != e.EntityID():
		return "entity"
	case ef.Category != "" && ef.Category != e.Category:
		return "category"
	case ef.EventStatus != "" && ef.EventStatus != e.EventStatus:
		return "eventStatus"
	case ef.Type != "" && ef.Type != e.Type:
		return "type"
	case len(ef.Types) > 0 && !slices.Contains(ef.Types, e.Type):
		return "types"
	case !herald.MatchSources(ef.Sources, e):
		return fmt.Sprintf("sources %v", ef.Sources)
	}
	return ""
}
