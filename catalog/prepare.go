package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/heraldhq/herald"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// maxLifecycleIDLength bounds an eventLifecycleId taken from data, as the
// envelope bounds one sent by the client.
const maxLifecycleIDLength = 512

// Prepare checks e, parsed and completed, against its account's catalog
// and readies it for the store: Def set to its type, EventLifecycleID
// taken from the type's pointer when the client sent none.
//
// Every violation is reported, in one EINVALID error with a field error
// each: /eventStatus for a status the type does not allow, and for data
// that fails the schema, the pointer of each failing value (/data/amount)
// with the keyword it broke; a missing required property is pointed at by
// its own pointer (/data/currency), the field the client must add. An
// event of an unregistered type passes with Def nil, unless the account
// refuses such events.
//
// Def is shared by every event of its type until the account's catalog
// is reloaded, and must not be changed.
//
// Prepare is on the ingest path: it decodes data once, for the schema and
// the lifecycle-id pointer both, and allocates little else.
func (c *Catalog) Prepare(ctx context.Context, accountID string, e *herald.Event) error {
	v, err := c.view(ctx, accountID)
	if err != nil {
		return err
	}
	ent := v.byKey[typeKey{e.Category, e.Type}]
	if ent == nil {
		e.Def = nil
		if v.settings.UnknownTypes == herald.UnknownTypesReject {
			return herald.FieldErrorf("/type", "%s/%s is not a registered event type; this account refuses unregistered types (settings unknownTypes: reject)", e.Category, e.Type)
		}
		return nil
	}
	def := ent.def

	var errs []herald.FieldError
	if e.EventStatus != "" && def.Status(e.EventStatus) == nil {
		errs = append(errs, herald.FieldError{Pointer: "/eventStatus", Detail: statusDetail(def, e.EventStatus)})
	}

	var doc any
	needLifecycle := e.EventLifecycleID == "" && ent.lifecycle != nil
	if ent.compiled != nil || needLifecycle {
		if len(e.Data) == 0 {
			doc = map[string]any{}
		} else if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(e.Data)); err != nil {
			return herald.FieldErrorf("/data", "is not valid JSON")
		}
	}
	if ent.compiled != nil {
		if ent.compiled.schema == nil {
			// The schema was accepted when stored but does not compile
			// now (a stored row written around the catalog, or a newer
			// library); events of the type cannot be checked.
			return fmt.Errorf("event type %s of account %s: schema does not compile: %s", def.Key(), accountID, ent.compiled.fields[0].Detail)
		}
		if err := ent.compiled.schema.Validate(doc); err != nil {
			var ve *jsonschema.ValidationError
			if !errors.As(err, &ve) {
				return fmt.Errorf("validate data of %s: %w", def.Key(), err)
			}
			errs = append(errs, violations(ve, "/data", c.printer)...)
		}
	}
	var lifecycleID string
	if needLifecycle {
		id, detail := lifecycleFrom(doc, ent.lifecycle)
		if detail != "" && !hasPointer(errs, def.LifecycleIDPointer) {
			errs = append(errs, herald.FieldError{Pointer: def.LifecycleIDPointer, Detail: detail})
		}
		lifecycleID = id
	}
	if len(errs) > 0 {
		sortFields(errs)
		return invalid(errs)
	}
	if lifecycleID != "" {
		e.EventLifecycleID = lifecycleID
	}
	e.Def = def
	return nil
}

func statusDetail(def *herald.EventType, status string) string {
	if len(def.Statuses) == 0 {
		return fmt.Sprintf("%q is not allowed: %s defines no statuses, so its events are sent without eventStatus", status, def.Key())
	}
	return fmt.Sprintf("%q is not a status of %s (allowed: %s)", status, def.Key(), strings.Join(def.StatusNames(), ", "))
}

// lifecycleFrom returns the eventLifecycleId found in data at the
// reference tokens path, "" if there is none there, or why the value found
// cannot serve.
func lifecycleFrom(data any, path []string) (id, detail string) {
	v, ok := resolve(data, path)
	if !ok {
		return "", ""
	}
	switch v := v.(type) {
	case string:
		id = v
	case json.Number:
		id = decimal(v)
	default:
		return "", "must be a string or number to serve as eventLifecycleId"
	}
	switch {
	case id == "":
		return "", "must not be empty to serve as eventLifecycleId"
	case len(id) > maxLifecycleIDLength:
		return "", fmt.Sprintf("must be at most %d bytes long to serve as eventLifecycleId", maxLifecycleIDLength)
	case strings.ContainsFunc(id, unicode.IsControl):
		return "", "must not contain control characters to serve as eventLifecycleId"
	}
	return id, ""
}

// resolve follows reference tokens through a decoded JSON document, as
// herald.ResolvePointer does through an encoded one.
func resolve(doc any, path []string) (any, bool) {
	cur := doc
	for _, token := range path {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[token]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(token)
			if err != nil || i < 0 || i >= len(v) || strconv.Itoa(i) != token {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// decimal writes a JSON number as plain decimal text, so that 1e3 and 1000
// name the same lifecycle. Integers are kept digit for digit, however
// long; others go through float64, which big exponents cannot blow up.
func decimal(n json.Number) string {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func hasPointer(errs []herald.FieldError, p string) bool {
	return slices.ContainsFunc(errs, func(f herald.FieldError) bool { return f.Pointer == p })
}
