package herald

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
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
var serverFields = map[string]bool{"seq": true, "receivedAt": true, "origin": true}

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
		var s string
		if isNull(v) {
			continue
		}
		if err := json.Unmarshal(v, &s); err != nil {
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
	e.Origin = origin
}

// contentHash identifies what the client sent, independent of key order and
// white space in data and of the time zone occurredAt was written in. It is
// computed before defaults are applied, so a resent event without occurredAt
// hashes the same.
func contentHash(e *Event) (string, error) {
	c := *e
	c.Hash, c.Body = "", nil
	if !c.OccurredAt.IsZero() {
		c.OccurredAt = c.OccurredAt.UTC()
	}
	if c.Data != nil {
		var v any
		dec := json.NewDecoder(bytes.NewReader(c.Data))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return "", err
		}
		canon, err := json.Marshal(v) // maps marshal with sorted keys
		if err != nil {
			return "", err
		}
		c.Data = canon
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
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
