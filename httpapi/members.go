package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// readMembers reads a request body that must be a JSON object, as its
// raw members; what names the thing sent, for the message when it is too
// large.
func readMembers(w http.ResponseWriter, r *http.Request, what string) (map[string]json.RawMessage, error) {
	var members map[string]json.RawMessage
	if err := decodeJSONUpTo(w, r, maxAdminBodyBytes, what, &members); err != nil {
		return nil, err
	}
	if members == nil { // null
		return nil, herald.FieldErrorf("", "must be a JSON object")
	}
	return members, nil
}

// decodeDefinition decodes the members of a definition (a workflow, a
// work job) into v, a pointer to its struct. The members Herald sets
// (readOnly) are refused on a create and ignored on a replace (put), so
// that what GET answers can be changed and sent back; every other
// unknown member, and every value of the wrong type, is named by its own
// pointer, however deep.
func decodeDefinition(members map[string]json.RawMessage, readOnly []string, put bool, v any) []herald.FieldError {
	var errs []herald.FieldError
	settable := make(map[string]json.RawMessage, len(members))
	for _, name := range slices.Sorted(maps.Keys(members)) {
		switch {
		case !slices.Contains(readOnly, name):
			settable[name] = members[name]
		case !put:
			errs = append(errs, herald.FieldError{Pointer: "/" + escapePointer(name), Detail: "is set by Herald; leave it out"})
		}
	}
	return append(errs, decodeStruct(settable, "", reflect.ValueOf(v).Elem())...)
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	timeType        = reflect.TypeFor[time.Time]()
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
)

// decodeValue decodes raw, found at pointer, into v. encoding/json stops
// at the first fault and names neither the array index nor the object of
// an unknown field; walking the value by its Go type names each fault
// exactly. Null leaves v zero.
func decodeValue(raw json.RawMessage, pointer string, v reflect.Value) []herald.FieldError {
	if isNull(raw) {
		v.SetZero()
		return nil
	}
	t := v.Type()
	switch {
	case t == rawMessageType:
		v.SetBytes(slices.Clone(raw))
		return nil
	case t == timeType:
		if json.Unmarshal(raw, v.Addr().Interface()) != nil {
			return []herald.FieldError{{Pointer: pointer, Detail: "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z"}}
		}
		return nil
	case reflect.PointerTo(t).Implements(unmarshalerType):
		// Duration: its own message says what it takes.
		if err := v.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			return []herald.FieldError{{Pointer: pointer, Detail: err.Error()}}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		errs := decodeValue(raw, pointer, p.Elem())
		v.Set(p)
		return errs
	case reflect.Struct:
		members, fe := decodeObject(raw, pointer)
		if fe != nil {
			return []herald.FieldError{*fe}
		}
		return decodeStruct(members, pointer, v)
	case reflect.Slice:
		var items []json.RawMessage
		if decodeAt(raw, pointer, &items) != nil {
			return []herald.FieldError{{Pointer: pointer, Detail: "must be an array"}}
		}
		s := reflect.MakeSlice(t, len(items), len(items))
		var errs []herald.FieldError
		for i, item := range items {
			errs = append(errs, decodeValue(item, fmt.Sprintf("%s/%d", pointer, i), s.Index(i))...)
		}
		v.Set(s)
		return errs
	case reflect.Map:
		if t.Key().Kind() != reflect.String || t.Elem().Kind() == reflect.Interface {
			break // free-form JSON, such as attributes: as encoding/json reads it
		}
		members, fe := decodeObject(raw, pointer)
		if fe != nil {
			return []herald.FieldError{*fe}
		}
		m := reflect.MakeMapWithSize(t, len(members))
		var errs []herald.FieldError
		for _, name := range slices.Sorted(maps.Keys(members)) {
			elem := reflect.New(t.Elem()).Elem()
			errs = append(errs, decodeValue(members[name], pointer+"/"+escapePointer(name), elem)...)
			m.SetMapIndex(reflect.ValueOf(name).Convert(t.Key()), elem)
		}
		v.Set(m)
		return errs
	}
	if fe := decodeAt(raw, pointer, v.Addr().Interface()); fe != nil {
		return []herald.FieldError{*fe}
	}
	return nil
}

// decodeStruct decodes an object's members into the struct v, naming
// each member it does not have. The members of an embedded struct are
// the struct's own, as encoding/json has them.
func decodeStruct(members map[string]json.RawMessage, pointer string, v reflect.Value) []herald.FieldError {
	fields := jsonFields(v.Type())
	var errs []herald.FieldError
	for _, name := range slices.Sorted(maps.Keys(members)) {
		index, ok := fields[name]
		if !ok {
			errs = append(errs, herald.FieldError{Pointer: pointer + "/" + escapePointer(name), Detail: "unknown field"})
			continue
		}
		errs = append(errs, decodeValue(members[name], pointer+"/"+escapePointer(name), v.FieldByIndex(index))...)
	}
	return errs
}

// jsonFields maps the JSON member names of a struct type to its fields,
// those of embedded structs included.
func jsonFields(t reflect.Type) map[string][]int {
	fields := map[string][]int{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || (f.Anonymous && f.Type.Kind() == reflect.Struct) {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		fields[name] = f.Index
	}
	return fields
}

// ruleErrors returns the fields a definition's Validate error names; an
// error that is not EINVALID is returned as it is.
func ruleErrors(err error, what string) ([]herald.FieldError, error) {
	if err == nil {
		return nil, nil
	}
	var e *herald.Error
	if !errors.As(err, &e) || e.Code != herald.EINVALID {
		return nil, fmt.Errorf("validate %s: %w", what, err)
	}
	return e.Fields, nil
}

// templateErrors turns what compiling the template at pointer returned
// into the fields it names; an error that is not EINVALID (the compiler
// broke rather than the template) is returned as it is.
func templateErrors(err error, pointer string) ([]herald.FieldError, error) {
	var e *herald.Error
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &e) && e.Code != herald.EINVALID:
		return nil, err
	case e != nil && len(e.Fields) > 0:
		return e.Fields, nil
	case e != nil:
		return []herald.FieldError{{Pointer: pointer, Detail: e.Message}}, nil
	default:
		return []herald.FieldError{{Pointer: pointer, Detail: "does not compile: " + err.Error()}}, nil
	}
}

// compileTemplates compiles each Jsonnet program of a definition through
// Config.CompileTemplateAt, and returns the fields of those that do not
// compile.
func (s *Server) compileTemplates(list []herald.Template) ([]herald.FieldError, error) {
	if s.compileAt == nil {
		return nil, nil
	}
	var errs []herald.FieldError
	for _, t := range list {
		fe, err := templateErrors(s.compileAt(t.Pointer, t.Text), t.Pointer)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", t.Pointer, err)
		}
		errs = append(errs, fe...)
	}
	return errs, nil
}

// unmoved leaves a pointer where it is.
func unmoved(pointer string) string { return pointer }

// joinErrors lists the fields at fault: those that did not decode
// (decoded), then those that break a rule (ruled), each moved where the
// body has it, but for a rule broken by a field that did not decode or
// that is named already: each field is named once.
func joinErrors(decoded, ruled []herald.FieldError, move func(string) string) []herald.FieldError {
	errs := slices.Clone(decoded)
	for _, fe := range ruled {
		fe.Pointer = move(fe.Pointer)
		named := slices.ContainsFunc(errs, func(d herald.FieldError) bool {
			return fe.Pointer == d.Pointer || strings.HasPrefix(fe.Pointer, d.Pointer+"/")
		})
		if !named {
			errs = append(errs, fe)
		}
	}
	return errs
}

// redactedLeft names the secrets of a target that are the placeholder
// the API shows instead of them. A replace puts back the stored secrets
// that were sent back so (KeepSecrets); one still left stands for nothing
// Herald could put back (the SMTP host or user changed, the header is
// new), and storing it would send "[redacted]" as a password.
func redactedLeft(prefix string, headers map[string]string, smtp *herald.SMTPConfig) []herald.FieldError {
	const detail = "is " + herald.Redacted + ", the placeholder Herald shows for a secret, and no stored secret matches it: send the value itself"
	var errs []herald.FieldError
	for _, k := range slices.Sorted(maps.Keys(headers)) {
		if headers[k] == herald.Redacted {
			errs = append(errs, herald.FieldError{Pointer: prefix + "/headers/" + escapePointer(k), Detail: detail})
		}
	}
	if smtp != nil && smtp.Password == herald.Redacted {
		errs = append(errs, herald.FieldError{Pointer: prefix + "/smtp/password", Detail: detail})
	}
	return errs
}
