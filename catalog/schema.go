package catalog

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/heraldhq/herald"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/message"
)

// maxSchemas bounds the compiled schemas kept across accounts. Accounts
// that share a schema (every account shares the built-in ones) share its
// compiled form, so the bound is on distinct schemas, not on accounts.
const maxSchemas = 4096

// permissiveSchema is served for a registered type that has no schema: it
// says what the catalog does with such a type's data, accept any object.
const permissiveSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}`

// schemaURL is where a schema being compiled is said to live. It is not a
// real location: nothing is ever loaded from it.
const schemaURL = "herald:schema"

// compiled is the outcome of compiling one schema document.
type compiled struct {
	schema *jsonschema.Schema
	// fields says why the document is not a usable schema, each entry
	// pointing into it (relative to the document's root).
	fields []herald.FieldError
}

// schemaCache compiles each distinct schema document once per process.
type schemaCache struct {
	printer *message.Printer

	mu      sync.Mutex
	byHash  map[[sha256.Size]byte]*compiled
	compile int // compilations done, for tests
}

func newSchemaCache(p *message.Printer) *schemaCache {
	return &schemaCache{printer: p, byHash: map[[sha256.Size]byte]*compiled{}}
}

// get returns the compiled form of the schema document doc, which must
// be valid JSON. Documents that differ only in white space or key order
// share one entry.
func (sc *schemaCache) get(doc json.RawMessage) *compiled {
	v, canon, err := canonical(doc)
	if err != nil {
		return &compiled{fields: []herald.FieldError{{Pointer: "", Detail: "is not valid JSON: " + err.Error()}}}
	}
	key := sha256.Sum256(canon)
	sc.mu.Lock()
	c, ok := sc.byHash[key]
	sc.mu.Unlock()
	if ok {
		return c
	}
	// Two goroutines may compile the same new schema at once; both get
	// a correct result and one of them is kept. Compiling outside the
	// lock keeps a slow schema from holding up every other account.
	c = sc.compileDoc(v)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if prev, ok := sc.byHash[key]; ok {
		return prev
	}
	if len(sc.byHash) >= maxSchemas {
		for k := range sc.byHash { // evict one at random: map order is random
			delete(sc.byHash, k)
			break
		}
	}
	sc.byHash[key] = c
	sc.compile++
	return c
}

func (sc *schemaCache) compileDoc(v any) *compiled {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	// The library would read $ref targets from the server's file system;
	// a schema sent by a client may refer only to itself and to the
	// standard meta-schemas, which the library holds in memory.
	c.UseLoader(refuseLoader{})
	if err := c.AddResource(schemaURL, v); err != nil {
		return &compiled{fields: []herald.FieldError{{Pointer: "", Detail: err.Error()}}}
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return &compiled{fields: sc.compileErrors(err)}
	}
	return &compiled{schema: sch}
}

// compileErrors turns the library's reasons for refusing a schema into
// field errors, pointing where in the schema the library says.
func (sc *schemaCache) compileErrors(err error) []herald.FieldError {
	var (
		sve  *jsonschema.SchemaValidationError
		load *jsonschema.LoadURLError
		re   *jsonschema.InvalidRegexError
	)
	switch {
	case errors.As(err, &sve):
		var ve *jsonschema.ValidationError
		if errors.As(sve.Err, &ve) {
			fields := violations(ve, "", sc.printer)
			if len(fields) > 0 {
				return fields
			}
		}
	case errors.As(err, &load):
		return []herald.FieldError{{Detail: fmt.Sprintf("cannot load %q: a schema may refer only to itself and to the JSON Schema meta-schemas", load.URL)}}
	case errors.As(err, &re):
		return []herald.FieldError{{Pointer: fragment(re.URL), Detail: fmt.Sprintf("invalid regular expression %q: %v", re.Regex, re.Err)}}
	}
	// The library's reason, less the made-up location of the document,
	// which means nothing to the client: "herald:schema#/$defs/x" reads
	// "#/$defs/x".
	return []herald.FieldError{{Detail: strings.ReplaceAll(err.Error(), schemaURL, "")}}
}

// fragment returns the JSON Pointer in the fragment of a schema location
// such as herald:schema#/properties/a, or "" when it has none.
func fragment(loc string) string {
	_, frag, ok := strings.Cut(loc, "#")
	if !ok || !strings.HasPrefix(frag, "/") {
		return ""
	}
	return frag
}

type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("loading %s is not allowed", url)
}

// canonical decodes doc and encodes it again with sorted keys and no
// white space, so that equal schemas have equal bytes.
func canonical(doc json.RawMessage) (any, []byte, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, nil, err
	}
	return v, b, nil
}

// sameSchema reports whether two schema documents say the same thing.
func sameSchema(a, b json.RawMessage) bool {
	_, ca, errA := canonical(a)
	_, cb, errB := canonical(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

// maxAlternatives bounds how many failed alternatives of an anyOf or oneOf
// are described.
const maxAlternatives = 4

// violations flattens a validation error into one field error per thing
// that is wrong, each pointing at its value (prefix + instance location)
// and naming the keyword broken. The library reports a tree: its leaves are
// the violations, except under anyOf and oneOf, whose branches are
// alternatives, not each a violation, so they are described together on
// the combinator. A missing required property, and a property that is not
// allowed, are pointed at by the property's own pointer.
func violations(ve *jsonschema.ValidationError, prefix string, p *message.Printer) []herald.FieldError {
	var out []herald.FieldError
	collect(ve, prefix, p, &out)
	sortFields(out)
	return slices.CompactFunc(out, func(a, b herald.FieldError) bool { return a == b })
}

// sortFields orders field errors by pointer, array indexes by number
// (/items/2 before /items/10), so that they come out the same every time
// and in the order of the document.
func sortFields(fields []herald.FieldError) {
	slices.SortStableFunc(fields, func(a, b herald.FieldError) int { return comparePointers(a.Pointer, b.Pointer) })
}

func comparePointers(a, b string) int {
	for a != "" && b != "" {
		var ta, tb string
		ta, a, _ = strings.Cut(strings.TrimPrefix(a, "/"), "/")
		tb, b, _ = strings.Cut(strings.TrimPrefix(b, "/"), "/")
		if a != "" {
			a = "/" + a
		}
		if b != "" {
			b = "/" + b
		}
		if c := compareTokens(ta, tb); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}

func compareTokens(a, b string) int {
	if isIndex(a) && isIndex(b) && len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

func isIndex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func collect(ve *jsonschema.ValidationError, prefix string, p *message.Printer, out *[]herald.FieldError) {
	at := prefix + pointer(ve.InstanceLocation)
	switch k := ve.ErrorKind.(type) {
	case *kind.AnyOf, *kind.OneOf:
		if len(ve.Causes) > 0 {
			*out = append(*out, herald.FieldError{Pointer: at, Detail: alternatives(ve, at, prefix, p)})
			return
		}
	case *kind.Required:
		for _, name := range k.Missing {
			*out = append(*out, herald.FieldError{Pointer: at + "/" + escape(name), Detail: "required: missing property " + strconv.Quote(name)})
		}
		return
	case *kind.DependentRequired:
		for _, name := range k.Missing {
			*out = append(*out, herald.FieldError{Pointer: at + "/" + escape(name), Detail: fmt.Sprintf("dependentRequired: missing property %q, required when %q is present", name, k.Prop)})
		}
		return
	case *kind.AdditionalProperties:
		for _, name := range k.Properties {
			*out = append(*out, herald.FieldError{Pointer: at + "/" + escape(name), Detail: fmt.Sprintf("additionalProperties: property %q is not allowed", name)})
		}
		return
	}
	if len(ve.Causes) == 0 {
		*out = append(*out, herald.FieldError{Pointer: at, Detail: describe(ve.ErrorKind, p)})
		return
	}
	for _, c := range ve.Causes {
		collect(c, prefix, p, out)
	}
}

// alternatives describes a failed anyOf or oneOf by what each of its first
// branches found wrong.
func alternatives(ve *jsonschema.ValidationError, at, prefix string, p *message.Printer) string {
	keyword := ve.ErrorKind.KeywordPath()[0]
	var sb strings.Builder
	sb.WriteString(keyword)
	sb.WriteString(": matches none of the alternatives (")
	for i, c := range ve.Causes {
		if i == maxAlternatives {
			fmt.Fprintf(&sb, "; and %d more", len(ve.Causes)-i)
			break
		}
		if i > 0 {
			sb.WriteString("; ")
		}
		var branch []herald.FieldError
		collect(c, prefix, p, &branch)
		for j, f := range branch {
			if j > 0 {
				sb.WriteString(", ")
			}
			if f.Pointer != at {
				sb.WriteString(strings.TrimPrefix(f.Pointer, at))
				sb.WriteString(" ")
			}
			sb.WriteString(f.Detail)
		}
	}
	sb.WriteString(")")
	return sb.String()
}

// describe says which keyword failed and why, in the form
// `keyword: reason`.
func describe(k jsonschema.ErrorKind, p *message.Printer) string {
	switch k := k.(type) {
	case *kind.Pattern:
		return fmt.Sprintf("pattern: %q does not match %s", k.Got, k.Want)
	case *kind.Format:
		return fmt.Sprintf("format: %s is not a valid %s (%v)", display(k.Got), k.Want, k.Err)
	case *kind.Enum:
		if want, ok := displayAll(k.Want); ok {
			if len(k.Want) == 1 {
				return "enum: must be " + want
			}
			return "enum: must be one of " + want
		}
	case *kind.Const:
		if want, ok := displayAll([]any{k.Want}); ok {
			return "const: must be " + want
		}
	case *kind.FalseSchema:
		return "false: no value is allowed here"
	case *kind.Schema:
		return "does not match the schema"
	}
	msg := k.LocalizedString(p)
	path := k.KeywordPath()
	if len(path) == 0 {
		return msg
	}
	keyword := path[0]
	if strings.HasPrefix(msg, keyword+":") {
		return msg
	}
	return keyword + ": " + msg
}

// display shows a decoded JSON value as JSON, strings quoted.
func display(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}

// displayAll lists primitive values; ok is false if one of them is an
// object or an array, which would make a poor message.
func displayAll(vs []any) (string, bool) {
	parts := make([]string, len(vs))
	for i, v := range vs {
		switch v.(type) {
		case map[string]any, []any:
			return "", false
		}
		parts[i] = display(v)
	}
	return strings.Join(parts, ", "), true
}

// pointer encodes reference tokens as a JSON Pointer.
func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escape(t))
	}
	return sb.String()
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escape(token string) string { return pointerEscaper.Replace(token) }
