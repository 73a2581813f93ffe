package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

// batchEvents are README events, for batch seeds.
var batchEvents = []string{
	`{"category":"authentication","type":"login","eventStatus":"attempted","coreCustomerId":"cust-42","data":{"external_login_id":"lg-1","ip_address":"203.0.113.7","login_method":"password"}}`,
	`{"category":"authentication","type":"login","eventStatus":"succeeded","coreCustomerId":"cust-42","data":{"external_login_id":"lg-1","ip_address":"203.0.113.7","login_method":"otp"}}`,
	`{"id":"login-1","category":"authentication","type":"userLoggedIn","coreCustomerId":"cust-42"}`,
	`{"category":"transactions","type":"transaction","eventStatus":"settled","data":{"external_transaction_id":"tx-1","amount":"12,50"}}`,
}

// parseOutcome is what ParseEvent makes of an item: its content hash, or
// its error.
func parseOutcome(raw []byte) string {
	e, err := herald.ParseEvent(raw)
	if err != nil {
		return "error: " + err.Error()
	}
	return e.Hash
}

// compactItem is an item without insignificant white space.
func compactItem(t *testing.T, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("item %q is not JSON: %v", raw, err)
	}
	return buf.Bytes()
}

// FuzzNDJSONBatch fuzzes splitBatch, which cuts a POST /v1/events/batch
// body into events, with any Content-Type:
//   - it fails with EINVALID or ETOOLARGE, or gives 1 to MaxBatchEvents
//     items;
//   - NDJSON items are the body's non-blank lines, trimmed;
//   - a {"events":[…]} body is accepted exactly when encoding/json reads
//     it as an object whose one member is an array of 1 to MaxBatchEvents
//     values (a repeated "events" member aside, which the map hides), with
//     the same items;
//   - the two forms agree: the items of one, sent in the other, are the
//     same items, and ParseEvent makes the same of each;
//   - item errors are moved under /events/<i>.
func FuzzNDJSONBatch(f *testing.F) {
	const ndjson, plain = "application/x-ndjson", "application/json"
	f.Add(ndjson, []byte(strings.Join(batchEvents, "\n")+"\n"))
	f.Add("application/x-ndjson; charset=utf-8", []byte(strings.Join(batchEvents, "\r\n")))
	f.Add(plain, []byte(`{"events":[`+strings.Join(batchEvents, ",")+`]}`))
	f.Add(plain, []byte("{\n  \"events\": [\n    "+strings.Join(batchEvents, ",\n    ")+"\n  ]\n}\n"))
	f.Add("", []byte(`{"events":[{"category":"c","type":"t"}]}`))
	f.Add(ndjson, []byte("\n \n"))
	f.Add(ndjson, []byte("{\"category\":\"c\",\"type\":\"t\"}\nnot json\n[1]\n"))
	f.Add(plain, []byte(`{"events":[1,"x",null,{}],"more":true}`))
	f.Add(plain, []byte(`{"events":[],"events":[{}]}`))
	f.Add(plain, []byte(`{"\u0065vents":[{"category":"c","type":"t"}]} {}`))
	f.Add(plain, []byte(`[{"category":"c","type":"t"}]`))
	f.Add("text/plain; charset", []byte(`{"events":{"category":"c"}}`))

	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		items, err := splitBatch(contentType, body)
		mt, _, _ := mime.ParseMediaType(contentType)
		isNDJSON := mt == ndjson
		if !isNDJSON {
			checkJSONBatch(t, body, items, err)
		}
		if err != nil {
			var he *herald.Error
			if !errors.As(err, &he) || (he.Code != herald.EINVALID && he.Code != herald.ETOOLARGE) {
				t.Fatalf("splitBatch error %#v, want EINVALID or ETOOLARGE", err)
			}
			if items != nil {
				t.Fatalf("splitBatch returned %d items with its error %v", len(items), err)
			}
			return
		}
		if len(items) == 0 || len(items) > herald.MaxBatchEvents {
			t.Fatalf("splitBatch returned %d items", len(items))
		}

		// The same items in the other form.
		var other []byte
		if isNDJSON {
			lines := 0
			for _, line := range bytes.Split(body, []byte("\n")) {
				if len(bytes.TrimSpace(line)) > 0 {
					lines++
				}
			}
			if lines != len(items) {
				t.Fatalf("%d items from %d non-blank lines", len(items), lines)
			}
			for _, it := range items {
				if len(it) == 0 || !bytes.Equal(it, bytes.TrimSpace(it)) || bytes.IndexByte(it, '\n') >= 0 {
					t.Fatalf("NDJSON item %q is blank, untrimmed or holds a newline", it)
				}
				if !json.Valid(it) {
					other = nil
					break
				}
				other = append(other, ',')
				other = append(other, it...)
			}
			if other != nil {
				other = append(append([]byte(`{"events":[`), other[1:]...), "]}"...)
			}
		} else {
			for _, it := range items {
				other = append(other, compactItem(t, it)...)
				other = append(other, '\n')
			}
		}
		if other != nil {
			otherType := ndjson
			if isNDJSON {
				otherType = plain
			}
			again, err := splitBatch(otherType, other)
			if err != nil {
				t.Fatalf("the %d items, sent as %s, are refused: %v\n%s", len(items), otherType, err, other)
			}
			if len(again) != len(items) {
				t.Fatalf("%d items, sent as %s: %d items", len(items), otherType, len(again))
			}
			for i := range items {
				if !bytes.Equal(compactItem(t, items[i]), compactItem(t, again[i])) {
					t.Fatalf("item %d is %q, sent as %s %q", i, items[i], otherType, again[i])
				}
				if a, b := parseOutcome(items[i]), parseOutcome(again[i]); a != b {
					t.Fatalf("item %d parses to %s, sent as %s to %s", i, a, otherType, b)
				}
			}
		}

		for i, it := range items {
			_, err := herald.ParseEvent(it)
			if err == nil {
				continue
			}
			var he *herald.Error
			if !errors.As(prefixError(err, itemPointer(i)), &he) || len(he.Fields) == 0 {
				t.Fatalf("item %d: prefixed error %v has no fields", i, he)
			}
			for _, fe := range he.Fields {
				if fe.Pointer != itemPointer(i) && !strings.HasPrefix(fe.Pointer, itemPointer(i)+"/") {
					t.Fatalf("item %d: error pointer %q is not under %s", i, fe.Pointer, itemPointer(i))
				}
			}
		}
	})
}

// checkJSONBatch compares splitBatch on a {"events":[…]} body with
// encoding/json reading the whole body.
func checkJSONBatch(t *testing.T, body []byte, items []json.RawMessage, err error) {
	t.Helper()
	var members map[string]json.RawMessage
	var events []json.RawMessage
	stdErr := json.Unmarshal(body, &members)
	if stdErr == nil {
		raw, ok := members["events"]
		switch {
		case len(members) != 1 || !ok:
			stdErr = errors.New(`not only "events"`)
		default:
			stdErr = json.Unmarshal(raw, &events)
		}
	}
	if stdErr == nil && (events == nil || len(events) == 0 || len(events) > herald.MaxBatchEvents) {
		stdErr = errors.New("not 1 to 1,000 events")
	}
	switch {
	case err == nil && stdErr != nil:
		t.Fatalf("splitBatch accepts a body encoding/json refuses (%v): %q", stdErr, body)
	case err != nil && stdErr == nil:
		var he *herald.Error
		if errors.As(err, &he) && len(he.Fields) == 1 && he.Fields[0].Pointer == "/events" && he.Fields[0].Detail == "is given twice" {
			return // a repeated member: the map kept the last
		}
		t.Fatalf("splitBatch refuses a body encoding/json reads as %d events: %v\n%q", len(events), err, body)
	case err == nil:
		if len(items) != len(events) {
			t.Fatalf("splitBatch finds %d items, encoding/json %d", len(items), len(events))
		}
		for i := range items {
			if !bytes.Equal(compactItem(t, items[i]), compactItem(t, events[i])) {
				t.Fatalf("item %d: splitBatch %q, encoding/json %q", i, items[i], events[i])
			}
		}
	}
}
