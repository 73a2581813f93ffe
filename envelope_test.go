package herald_test

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

func TestParseEventRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		code    string
		pointer string
		detail  string
	}{
		{"not an object", `[1]`, herald.EINVALID, "", "must be a JSON object"},
		{"null", `null`, herald.EINVALID, "", "must be a JSON object"},
		{"broken JSON", `{"category":`, herald.EINVALID, "", "must be a JSON object"},
		{"missing category", `{"type":"t"}`, herald.EINVALID, "/category", "is required"},
		{"missing type", `{"category":"c"}`, herald.EINVALID, "/type", "is required"},
		{"empty type", `{"category":"c","type":""}`, herald.EINVALID, "/type", "must not be empty"},
		{"type not a string", `{"category":"c","type":7}`, herald.EINVALID, "/type", "must be a string"},
		{"category with space", `{"category":"a b","type":"t"}`, herald.EINVALID, "/category", "may hold only"},
		{"unknown field", `{"category":"c","type":"t","colour":"red"}`, herald.EINVALID, "/colour", "unknown field"},
		{"misspelt field", `{"category":"c","type":"t","occurred_at":"x"}`, herald.EINVALID, "/occurred_at", `did you mean "occurredAt"`},
		{"server field seq", `{"category":"c","type":"t","seq":1}`, herald.EINVALID, "/seq", "set by the server"},
		{"server field origin", `{"category":"c","type":"t","origin":"system"}`, herald.EINVALID, "/origin", "set by the server"},
		{"both status spellings", `{"category":"c","type":"t","eventStatus":"a","event_status":"a"}`, herald.EINVALID, "/event_status", "only one of the two spellings"},
		{"both lifecycle spellings", `{"category":"c","type":"t","event_lifecycle_id":"a","eventLifecycleId":"a"}`, herald.EINVALID, "/event_lifecycle_id", "only one of the two spellings"},
		{"bad occurredAt", `{"category":"c","type":"t","occurredAt":"yesterday"}`, herald.EINVALID, "/occurredAt", "RFC 3339"},
		{"data array", `{"category":"c","type":"t","data":[1]}`, herald.EINVALID, "/data", "JSON object"},
		{"data string", `{"category":"c","type":"t","data":"x"}`, herald.EINVALID, "/data", "JSON object"},
		{"id with slash", `{"id":"a/b","category":"c","type":"t"}`, herald.EINVALID, "/id", "may hold only"},
		{"id too long", `{"id":"` + strings.Repeat("a", 129) + `","category":"c","type":"t"}`, herald.EINVALID, "/id", "at most 128"},
		{"field too long", `{"category":"c","type":"t","host":"` + strings.Repeat("h", 513) + `"}`, herald.EINVALID, "/host", "at most 512"},
		{"NUL in a field", `{"category":"c","type":"t","agentId":"a\u0000b"}`, herald.EINVALID, "/agentId", "control characters"},
		{"invalid UTF-8 in data", "{\"category\":\"c\",\"type\":\"t\",\"data\":{\"x\":\"\xff\"}}", herald.EINVALID, "/data", "UTF-8"},
		{"too large", `{"category":"c","type":"t","data":{"x":"` + strings.Repeat("x", herald.MaxEventBytes) + `"}}`, herald.ETOOLARGE, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := herald.ParseEvent([]byte(tt.in))
			if got := herald.ErrorCode(err); got != tt.code {
				t.Fatalf("code %q, want %q (err %v)", got, tt.code, err)
			}
			if tt.code == herald.ETOOLARGE {
				return
			}
			e := err.(*herald.Error)
			for _, f := range e.Fields {
				if f.Pointer == tt.pointer && strings.Contains(f.Detail, tt.detail) {
					return
				}
			}
			t.Fatalf("no field error %q containing %q in %+v", tt.pointer, tt.detail, e.Fields)
		})
	}
}

func TestParseEventAcceptsAliases(t *testing.T) {
	t.Parallel()
	e, err := herald.ParseEvent([]byte(`{"category":"transactions","type":"transaction","event_status":"pending","event_lifecycle_id":"tx-1","data":{"b":1, "a":[true]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.EventStatus != "pending" || e.EventLifecycleID != "tx-1" {
		t.Fatalf("aliases not read: %+v", e)
	}
	if string(e.Data) != `{"b":1,"a":[true]}` {
		t.Fatalf("data %s, want it compacted in the order sent", e.Data)
	}
}

func TestContentHash(t *testing.T) {
	t.Parallel()
	parse := func(s string) *herald.Event {
		t.Helper()
		e, err := herald.ParseEvent([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a := parse(`{"id":"x","category":"c","type":"t","occurredAt":"2026-01-01T10:00:00+02:00","data":{"a":1,"b":"2"}}`)
	same := parse(`{"data":{"b":"2", "a":1},"type":"t","category":"c","id":"x","occurredAt":"2026-01-01T08:00:00Z"}`)
	if a.Hash != same.Hash {
		t.Fatal("the same content hashes differently (key order, white space or time zone)")
	}
	for _, other := range []string{
		`{"id":"x","category":"c","type":"t","occurredAt":"2026-01-01T10:00:00+02:00","data":{"a":2,"b":"2"}}`,
		`{"id":"x","category":"c","type":"t2","occurredAt":"2026-01-01T10:00:00+02:00","data":{"a":1,"b":"2"}}`,
		`{"id":"x","category":"c","type":"t","data":{"a":1,"b":"2"}}`,
	} {
		if parse(other).Hash == a.Hash {
			t.Fatalf("different content hashes the same: %s", other)
		}
	}
}

func TestCompleteDefaults(t *testing.T) {
	t.Parallel()
	e, err := herald.ParseEvent([]byte(`{"category":"c","type":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	e.Complete(now, herald.OriginAPI, func() string { return "gen-1" })
	if e.ID != "gen-1" || e.Origin != "api" || !e.ReceivedAt.Equal(now.Truncate(time.Microsecond)) || !e.OccurredAt.Equal(e.ReceivedAt) {
		t.Fatalf("defaults not applied: %+v", e)
	}
}

func TestPrepareBody(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	parse := func(raw string) *herald.Event {
		e, err := herald.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		e.Complete(now, herald.OriginAPI, func() string { return "gen-1" })
		return e
	}
	for _, raw := range []string{
		`{"id":"a-1","category":"c","type":"t","data":{"x":"<&>","seq":0}}`,
		`{"category":"c","type":"t","eventStatus":"s"}`,
	} {
		prepared, plain := parse(raw), parse(raw)
		if err := prepared.PrepareBody(); err != nil {
			t.Fatal(err)
		}
		for _, seq := range []int64{1, 42, 1 << 40} {
			prepared.Seq, plain.Seq = seq, seq
			got, err := herald.MarshalEvent(prepared)
			if err != nil {
				t.Fatal(err)
			}
			want, err := herald.MarshalEvent(plain)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("prepared body with seq %d = %s, want %s", seq, got, want)
			}
		}
	}
}
