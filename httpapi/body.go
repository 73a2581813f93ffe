package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/heraldhq/herald"
)

// maxAdminBodyBytes bounds the bodies of the account and key routes.
const maxAdminBodyBytes = 64 << 10

// readBody reads the whole request body, refusing with ETOOLARGE one over
// limit bytes; what names the thing being sent, for the message.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, what string) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(what, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge(what, limit)
	case err != nil:
		return nil, herald.Errorf(herald.EINVALID, "could not read the request body: the connection failed")
	}
	return b, nil
}

func tooLarge(what string, limit int64) *herald.Error {
	return herald.Errorf(herald.ETOOLARGE, "%s may be at most %s; this request body is larger", what, sizeText(limit))
}

// sizeText writes a limit the way the documentation does.
func sizeText(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// decodeJSON reads a small JSON object into v, a pointer to a struct,
// refusing unknown fields and trailing data, and naming the field at fault
// by pointer.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeJSONUpTo(w, r, maxAdminBodyBytes, "this request body", v)
}

// decodeJSONUpTo is decodeJSON for a body of up to limit bytes; what names
// the thing sent, for the message when it is larger.
func decodeJSONUpTo(w http.ResponseWriter, r *http.Request, limit int64, what string, v any) error {
	b, err := readBody(w, r, limit, what)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return &herald.Error{Code: herald.EINVALID, Message: "the request body is empty; send a JSON object",
			Fields: []herald.FieldError{{Pointer: "", Detail: "must be a JSON object"}}}
	}
	return decodeJSONBytes(b, v)
}

// decodeOptionalJSON is decodeJSON for a route whose body may be left
// empty: then v is left as it is.
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := readBody(w, r, maxAdminBodyBytes, "this request body")
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return err
	}
	return decodeJSONBytes(b, v)
}

// decodeJSONBytes decodes b, a JSON object, into v, refusing unknown
// fields and trailing data.
func decodeJSONBytes(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &herald.Error{Code: herald.EINVALID, Message: "the request body holds more than one JSON value",
			Fields: []herald.FieldError{{Pointer: "", Detail: "must be a single JSON object"}}}
	}
	return nil
}

// decodeAt decodes raw, a JSON value found at pointer within a body that
// was decoded already, into v, refusing unknown fields. Decoding a nested
// value on its own is how its errors get exact pointers: encoding/json
// names neither the array index nor the object of an unknown field.
func decodeAt(raw json.RawMessage, pointer string, v any) *herald.FieldError {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var e *herald.Error
	if !errors.As(jsonError(err), &e) || len(e.Fields) == 0 {
		return &herald.FieldError{Pointer: pointer, Detail: "is not valid"}
	}
	return &herald.FieldError{Pointer: pointer + e.Fields[0].Pointer, Detail: e.Fields[0].Detail}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// jsonError turns a decoding error into an EINVALID error that names the
// field, in JSON terms rather than Go's.
func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return &herald.Error{Code: herald.EINVALID, Message: fmt.Sprintf("the request body is not valid JSON: %s at byte %d", syn.Error(), syn.Offset),
			Fields: []herald.FieldError{{Pointer: "", Detail: "must be valid JSON"}}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &herald.Error{Code: herald.EINVALID, Message: "the request body is not valid JSON: it ends too early",
			Fields: []herald.FieldError{{Pointer: "", Detail: "must be valid JSON"}}}
	case errors.As(err, &typ):
		pointer := ""
		if typ.Field != "" {
			pointer = "/" + strings.ReplaceAll(typ.Field, ".", "/")
		}
		return herald.FieldErrorf(pointer, "must be %s", jsonKind(typ.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return herald.FieldErrorf("/"+escapePointer(name), "unknown field")
	default:
		return herald.FieldErrorf("", "must be a JSON object")
	}
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "of another type"
	}
}

// escapePointer escapes a key for use as a JSON Pointer token (RFC 6901).
func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
