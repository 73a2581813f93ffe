package herald

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxFieldLength bounds every string field of the envelope but data.
const maxFieldLength = 512

// envelopeFields maps each accepted input spelling to the field it sets.
// The seed's snake_case spellings of the lifecycle fields are aliases.
var envelopeFields = map[string]string{
	"id": "id", "category": "category", "type": "type", "occurredAt": "occurredAt",
	"agentId": "agentId", "agentType": "agentType", "coreCustomerId": "coreCustomerId",
	"customerSerialId": "customerSerialId", "host": "host", "primaryId": "primaryId",
	"secondaryId": "secondaryId", "sessionId": "sessionId",
	"eventStatus": "eventStatus", "event_status": "eventStatus",
	"eventLifecycleId": "eventLifecycleId", "event_lifecycle_id": "eventLifecycleId",
	"data": "data",
}

// serverFields are envelope fields only Herald sets.
var serverFields = map[string]bool{
	"seq": true, "receivedAt": true, "origin": true, "redacted": true, "flags": true, "hash": true,
}

// ParseEvent decodes one event as a client sends it, checking every rule of
// the envelope, and returns it with Hash set. Defaults that depend on the
// moment of receipt (id, occurredAt, receivedAt, origin) are left for the
// caller: see Event.Complete.
//
// Errors are *Error with code EINVALID, or ETOOLARGE for an event over
// MaxEventBytes, each naming the field at fault by JSON Pointer.
func ParseEvent(b []byte) (*Event, error) {
	if len(b) > MaxEventBytes {
		return nil, &Error{Code: ETOOLARGE, Message: fmt.Sprintf("event is %d bytes; the limit is %d (256 KiB)", len(b), MaxEventBytes)}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, &Error{Code: EINVALID, Message: "event is not a JSON object: " + jsonErrorText(err), Fields: []FieldError{{Pointer: "", Detail: "must be a JSON object"}}}
	}
	if raw == nil {
		return nil, &Error{Code: EINVALID, Message: "event is not a JSON object", Fields: []FieldError{{Pointer: "", Detail: "must be a JSON object"}}}
	}

	var errs []FieldError
	fail := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: "/" + field, Detail: fmt.Sprintf(format, args...)})
	}

	// Visit keys in a fixed order so that errors come out in the same order
	// every time.
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	e := &Event{}
	seen := map[string]string{} // field -> spelling used
	for _, k := range keys {
		v := raw[k]
		field, ok := envelopeFields[k]
		switch {
		case serverFields[k]:
			fail(escapePointer(k), "is set by the server and must not be sent")
			continue
		case !ok:
			fail(escapePointer(k), "unknown field%s", suggestField(k))
			continue
		}
		if prev, dup := seen[field]; dup {
			fail(escapePointer(k), "is the same field as %q; send only one of the two spellings", prev)
			continue
		}
		seen[field] = k
		if field == "data" {
			if isNull(v) {
				continue
			}
			if t := firstByte(v); t != '{' {
				fail("data", "must be a JSON object")
				continue
			}
			if !utf8.Valid(v) {
				fail("data", "must be valid UTF-8")
				continue
			}
			e.Data = v
			continue
		}
		if isNull(v) {
			continue
		}
		s, ok := decodeString(v)
		if !ok {
			fail(escapePointer(k), "must be a string")
			continue
		}
		if len(s) > maxFieldLength {
			fail(escapePointer(k), "must be at most %d bytes long", maxFieldLength)
			continue
		}
		if strings.ContainsFunc(s, unicode.IsControl) {
			fail(escapePointer(k), "must not contain control characters")
			continue
		}
		switch field {
		case "id":
			if detail := checkEventID(s); detail != "" {
				fail("id", "%s", detail)
			}
			e.ID = s
		case "category":
			if detail := checkName(s); detail != "" {
				fail("category", "%s", detail)
			}
			e.Category = s
		case "type":
			if detail := checkName(s); detail != "" {
				fail("type", "%s", detail)
			}
			e.Type = s
		case "occurredAt":
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				fail("occurredAt", "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z")
				continue
			}
			e.OccurredAt = t
		case "agentId":
			e.AgentID = s
		case "agentType":
			e.AgentType = s
		case "coreCustomerId":
			e.CoreCustomerID = s
		case "customerSerialId":
			e.CustomerSerialID = s
		case "host":
			e.Host = s
		case "primaryId":
			e.PrimaryID = s
		case "secondaryId":
			e.SecondaryID = s
		case "sessionId":
			e.SessionID = s
		case "eventStatus":
			e.EventStatus = s
		case "eventLifecycleId":
			e.EventLifecycleID = s
		}
	}
	for _, f := range []struct{ name, value string }{{"category", e.Category}, {"type", e.Type}} {
		if f.value == "" && !hasPointer(errs, "/"+f.name) {
			fail(f.name, "is required")
		}
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Pointer < errs[j].Pointer })
		msg := fmt.Sprintf("%s: %s", errs[0].Pointer, errs[0].Detail)
		if len(errs) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(errs)-1)
		}
		return nil, &Error{Code: EINVALID, Message: msg, Fields: errs}
	}
	if e.Data != nil {
		// Keep data as sent, less insignificant white space.
		var buf bytes.Buffer
		if err := json.Compact(&buf, e.Data); err != nil {
			return nil, FieldErrorf("/data", "is not valid JSON")
		}
		e.Data = buf.Bytes()
	}
	h, err := contentHash(e)
	if err != nil {
		return nil, FieldErrorf("/data", "is not valid JSON")
	}
	e.Hash = h
	return e, nil
}

// Complete fills the fields set at receipt: an id from newID when the
// client sent none, receivedAt, occurredAt (defaulting to receivedAt) and
// origin. Times are kept to the microsecond, the precision every store
// holds.
func (e *Event) Complete(now time.Time, origin string, newID func() string) {
	if e.ID == "" {
		e.ID = newID()
	}
	e.ReceivedAt = now.UTC().Truncate(time.Microsecond)
	if e.OccurredAt.IsZero() {
		e.OccurredAt = e.ReceivedAt
	}
	// What is stored, in the body as in the columns, is what every store
	// can compare: lifecycles and profiles order events by occurredAt.
	e.OccurredAt = e.OccurredAt.Truncate(time.Microsecond)
	e.Origin = origin
}

// contentHash identifies what the client sent, independent of key order and
// white space in data and of the time zone occurredAt was written in. It is
// computed before defaults are applied, so a resent event without occurredAt
// hashes the same.
func contentHash(e *Event) (string, error) {
	buf := make([]byte, 0, 512+len(e.Data))
	field := func(name, value string) {
		if value == "" {
			return
		}
		buf = append(buf, name...)
		buf = append(buf, 0)
		buf = append(buf, value...)
		buf = append(buf, 0)
	}
	field("id", e.ID)
	field("category", e.Category)
	field("type", e.Type)
	if !e.OccurredAt.IsZero() {
		field("occurredAt", e.OccurredAt.UTC().Format(time.RFC3339Nano))
	}
	field("agentId", e.AgentID)
	field("agentType", e.AgentType)
	field("coreCustomerId", e.CoreCustomerID)
	field("customerSerialId", e.CustomerSerialID)
	field("host", e.Host)
	field("primaryId", e.PrimaryID)
	field("secondaryId", e.SecondaryID)
	field("sessionId", e.SessionID)
	field("eventStatus", e.EventStatus)
	field("eventLifecycleId", e.EventLifecycleID)
	if e.Data != nil {
		var v any
		dec := json.NewDecoder(bytes.NewReader(e.Data))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return "", err
		}
		buf = append(buf, "data"...)
		buf = append(buf, 0)
		buf = appendCanonical(buf, v)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), nil
}

// appendCanonical appends a canonical JSON form of v (as decoded with
// UseNumber): object keys sorted, no white space, numbers as written.
func appendCanonical(buf []byte, v any) []byte {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendQuote(buf, k)
			buf = append(buf, ':')
			buf = appendCanonical(buf, v[k])
		}
		return append(buf, '}')
	case []any:
		buf = append(buf, '[')
		for i, x := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendCanonical(buf, x)
		}
		return append(buf, ']')
	case string:
		return strconv.AppendQuote(buf, v)
	case json.Number:
		return append(buf, v...)
	case bool:
		return strconv.AppendBool(buf, v)
	default: // nil
		return append(buf, "null"...)
	}
}

// decodeString decodes a JSON string, taking the fast path when it holds
// no escapes.
func decodeString(v json.RawMessage) (string, bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		inner := v[1 : len(v)-1]
		if bytes.IndexByte(inner, '\\') < 0 && bytes.IndexByte(inner, '"') < 0 && utf8.Valid(inner) {
			return string(inner), true
		}
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// checkEventID returns why s is not a valid event id, or "".
func checkEventID(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > MaxIDLength {
		return fmt.Sprintf("must be at most %d characters", MaxIDLength)
	}
	for _, r := range s {
		if !isIDRune(r) {
			return fmt.Sprintf("may hold only letters, digits and . _ : ~ - (found %q)", r)
		}
	}
	return ""
}

// ValidID reports whether s may be used as an event id; ids appear in URL
// paths, so they are limited to characters that need no escaping.
func ValidID(s string) bool { return checkEventID(s) == "" }

func isIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == ':' || r == '~' || r == '-'
}

// checkName returns why s is not a valid category or type name, or "".
func checkName(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 64 {
		return "must be at most 64 characters"
	}
	for i, r := range s {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if i == 0 && !letter {
			return "must start with a letter"
		}
		if !letter && !(r >= '0' && r <= '9') && r != '_' && r != '-' && r != '.' {
			return fmt.Sprintf("may hold only letters, digits and _ - . (found %q)", r)
		}
	}
	return ""
}

// suggestField names the accepted field a misspelt one most likely meant.
func suggestField(k string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	for name := range envelopeFields {
		if norm(name) == norm(k) {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	return ""
}

// escapePointer escapes a key for use as a JSON Pointer token.
func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

func hasPointer(errs []FieldError, p string) bool {
	for _, e := range errs {
		if e.Pointer == p {
			return true
		}
	}
	return false
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

func firstByte(v json.RawMessage) byte {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// jsonErrorText turns a decoding error into a short sentence without Go
// type names.
func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s at byte %d", syn.Error(), syn.Offset)
	}
	return "expected an object"
}
