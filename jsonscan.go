package herald

import (
	"encoding/json"
	"strconv"
)

// The functions here read the top level of a JSON object without decoding
// it. They run in the store's single write transaction (lifecycles and
// profiles are kept there), where encoding/json's maps cost more than the
// SQL around them. They expect valid JSON, as ParseEvent and the stores
// guarantee, and report false rather than guess when they meet anything
// else.

// member is one top-level member of a JSON object, both parts as written.
type member struct {
	rawKey []byte // the quoted key, escapes and all
	value  []byte
}

// key returns the member's key, unescaped.
func (m member) key() string {
	k := m.rawKey[1 : len(m.rawKey)-1]
	for _, c := range k {
		if c == '\\' {
			var s string
			if err := json.Unmarshal(m.rawKey, &s); err != nil {
				return string(k)
			}
			return s
		}
	}
	return string(k)
}

// members returns the top-level members of the JSON object obj, in the
// order written, and false if obj is not an object.
func members(obj []byte) ([]member, bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	var out []member
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return out, true
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return nil, false
		}
		end, ok := skipString(obj, i)
		if !ok {
			return nil, false
		}
		rawKey := obj[i:end]
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false
		}
		i = skipSpace(obj, i+1)
		vend, ok := skipValue(obj, i)
		if !ok {
			return nil, false
		}
		out = append(out, member{rawKey: rawKey, value: obj[i:vend]})
		i = skipSpace(obj, vend)
		if i >= len(obj) {
			return nil, false
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return out, true
		default:
			return nil, false
		}
	}
	return nil, false
}

// lookup returns the value of the member named key in the JSON object obj.
func lookup(obj []byte, key string) ([]byte, bool) {
	ms, ok := members(obj)
	if !ok {
		return nil, false
	}
	for _, m := range ms {
		if m.key() == key {
			return m.value, true
		}
	}
	return nil, false
}

// element returns element i of the JSON array arr.
func element(arr []byte, i int) ([]byte, bool) {
	j := skipSpace(arr, 0)
	if j >= len(arr) || arr[j] != '[' {
		return nil, false
	}
	j = skipSpace(arr, j+1)
	for n := 0; j < len(arr) && arr[j] != ']'; n++ {
		end, ok := skipValue(arr, j)
		if !ok {
			return nil, false
		}
		if n == i {
			return arr[j:end], true
		}
		j = skipSpace(arr, end)
		if j < len(arr) && arr[j] == ',' {
			j = skipSpace(arr, j+1)
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at b[i].
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := skipString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
			j++
		}
		if j == i {
			return 0, false
		}
		return j, true
	}
}

// appendObject appends a JSON object of the members, in the order given.
func appendObject(buf []byte, ms []member) []byte {
	buf = append(buf, '{')
	for i, m := range ms {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, m.rawKey...)
		buf = append(buf, ':')
		buf = append(buf, m.value...)
	}
	return append(buf, '}')
}

// pointerValue resolves the JSON Pointer p in doc with the scanner: the
// fast form of ResolvePointer.
func pointerValue(doc []byte, p string) ([]byte, bool) {
	if p == "" {
		return doc, true
	}
	if p[0] != '/' {
		return nil, false
	}
	cur := doc
	rest := p[1:]
	for {
		token := rest
		next := -1
		for i := 0; i < len(rest); i++ {
			if rest[i] == '/' {
				token, next = rest[:i], i+1
				break
			}
		}
		token = pointerUnescaper.Replace(token)
		var ok bool
		switch firstByte(cur) {
		case '{':
			cur, ok = lookup(cur, token)
		case '[':
			i, err := strconv.Atoi(token)
			if err != nil || i < 0 || strconv.Itoa(i) != token {
				return nil, false
			}
			cur, ok = element(cur, i)
		}
		if !ok {
			return nil, false
		}
		if next < 0 {
			return cur, true
		}
		rest = rest[next:]
	}
}
