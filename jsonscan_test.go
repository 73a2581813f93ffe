package herald

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzMembers checks the scanner against encoding/json: for every valid
// JSON object, the members it finds are the ones a decoder finds, the last
// of a repeated key winning.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":"}","b":[1,{"c":"\""}],"a":null}`, ` { "k" : true , "\u00e9":-1.5e3 } `, `{"a\"b":{"x":{}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want map[string]json.RawMessage
		// Event data is valid UTF-8 (ParseEvent refuses the rest), which
		// encoding/json would otherwise rewrite.
		if !utf8.Valid(b) || json.Unmarshal(b, &want) != nil || want == nil {
			return
		}
		ms, ok := members(b)
		if !ok {
			t.Fatalf("members(%s) failed on a valid object", b)
		}
		got := map[string]json.RawMessage{}
		for _, m := range ms {
			got[m.key()] = m.value
		}
		if len(got) != len(want) {
			t.Fatalf("members(%s) found %d keys, want %d", b, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(bytes.TrimSpace(got[k]), bytes.TrimSpace(v)) {
				t.Fatalf("members(%s)[%q] = %s, want %s", b, k, got[k], v)
			}
		}
	})
}
