package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/heraldhq/herald"
)

// check validates the definition t, completing it first from builtin
// (its built-in counterpart, or nil) where the client left parts out, and
// sets its BuiltIn flags. All that is wrong is reported in one EINVALID
// error, a field error for each fault.
func (c *Catalog) check(t *herald.EventType, builtin *herald.EventType) error {
	if string(bytes.TrimSpace(t.Schema)) == "null" {
		t.Schema = nil
	}
	if builtin != nil {
		complete(t, builtin)
	}
	var errs []herald.FieldError
	if builtin != nil {
		// Breaking a built-in type is the fault to report: the rest is
		// often its echo (terminal statuses of the statuses removed).
		if errs = breaks(t, builtin); len(errs) > 0 {
			return invalid(errs)
		}
	}
	if err := t.Validate(); err != nil {
		var he *herald.Error
		if !errors.As(err, &he) {
			return err
		}
		errs = append(errs, he.Fields...)
	}
	errs = append(errs, c.checkSchema(t)...)
	markBuiltIn(t, builtin)
	normalize(t)
	return invalid(errs)
}

// normalize makes the lists of t empty rather than nil, so that they read
// as [] in JSON, as the built-in types' do.
func normalize(t *herald.EventType) {
	if t.Statuses == nil {
		t.Statuses = []herald.StatusDef{}
	}
	if t.TerminalStatuses == nil {
		t.TerminalStatuses = []string{}
	}
}

// checkSchema compiles t's schema, storing it compacted, and returns why
// it is not a usable schema, pointing into the definition.
func (c *Catalog) checkSchema(t *herald.EventType) []herald.FieldError {
	if len(t.Schema) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, t.Schema); err != nil {
		return []herald.FieldError{{Pointer: "/schema", Detail: "is not valid JSON"}}
	}
	t.Schema = buf.Bytes()
	var errs []herald.FieldError
	for _, f := range c.schemas.get(t.Schema).fields {
		errs = append(errs, herald.FieldError{Pointer: "/schema" + f.Pointer, Detail: f.Detail})
	}
	return errs
}

// complete fills in from the built-in type what an extension of it left
// out, so that a client may send only what it adds.
func complete(t, builtin *herald.EventType) {
	if t.Description == "" {
		t.Description = builtin.Description
	}
	if t.Schema == nil {
		t.Schema = bytes.Clone(builtin.Schema)
	}
	if t.Statuses == nil {
		t.Statuses = cloneStatuses(builtin.Statuses)
	}
	for i := range t.Statuses {
		if b := builtin.Status(t.Statuses[i].Name); b != nil && t.Statuses[i].Description == "" {
			t.Statuses[i].Description = b.Description
		}
	}
	if t.TerminalStatuses == nil {
		t.TerminalStatuses = slices.Clone(builtin.TerminalStatuses)
	}
	if t.Transitions == nil && builtin.Transitions != nil {
		t.Transitions = cloneTransitions(builtin.Transitions)
	}
	if t.LifecycleIDPointer == "" {
		t.LifecycleIDPointer = builtin.LifecycleIDPointer
	}
	if t.ProfileFields == nil {
		t.ProfileFields = slices.Clone(builtin.ProfileFields)
	}
}

// rebase brings an extension of a built-in type, stored under an earlier
// release, up to the built-in type as this release defines it: the schema
// and lifecycle-id pointer are the built-in's, and statuses, terminal
// statuses and transitions that the built-in has and the extension lacks
// are added. The extension goes on extending the built-in type rather
// than hiding what a release adds to it. An extension that allows any
// order (no transitions) keeps doing so.
func rebase(t, builtin *herald.EventType) {
	t.Schema = bytes.Clone(builtin.Schema)
	if builtin.LifecycleIDPointer != "" {
		t.LifecycleIDPointer = builtin.LifecycleIDPointer
	}
	for _, s := range builtin.Statuses {
		if t.Status(s.Name) == nil {
			t.Statuses = append(t.Statuses, s)
		}
	}
	for _, name := range builtin.TerminalStatuses {
		if !slices.Contains(t.TerminalStatuses, name) {
			t.TerminalStatuses = append(t.TerminalStatuses, name)
		}
	}
	if t.Transitions == nil {
		return
	}
	for from, tos := range builtin.Transitions {
		for _, to := range tos {
			if !slices.Contains(t.Transitions[from], to) {
				t.Transitions[from] = append(t.Transitions[from], to)
			}
		}
	}
}

// breaks returns what in t breaks the built-in type builtin, of which t
// is meant to be an extension: a field error for each fault, none if t
// extends it. An extension keeps the built-in schema and lifecycle-id
// pointer, every built-in status with its terminal flag, and every
// transition the built-in type allows; it may add statuses (terminal or
// not) and transitions, and choose workflows and persistence freely.
func breaks(t, builtin *herald.EventType) []herald.FieldError {
	var errs []herald.FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, herald.FieldError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)})
	}
	if !equalSchemas(t.Schema, builtin.Schema) {
		fail("/schema", "the schema of built-in type %s cannot be changed: omit schema to keep it", builtin.Key())
	}
	if builtin.LifecycleIDPointer != "" && t.LifecycleIDPointer != builtin.LifecycleIDPointer {
		fail("/lifecycleIdPointer", "must stay %q, the pointer of built-in type %s", builtin.LifecycleIDPointer, builtin.Key())
	}
	for _, s := range builtin.Statuses {
		if t.Status(s.Name) == nil {
			fail("/statuses", "must keep the built-in status %q of %s", s.Name, builtin.Key())
			continue
		}
		switch {
		case builtin.Terminal(s.Name) && !t.Terminal(s.Name):
			fail("/terminalStatuses", "must keep the built-in status %q terminal", s.Name)
		case !builtin.Terminal(s.Name) && t.Terminal(s.Name):
			fail(fmt.Sprintf("/terminalStatuses/%d", slices.Index(t.TerminalStatuses, s.Name)),
				"the built-in status %q is not terminal and cannot be made terminal", s.Name)
		}
	}
	for _, from := range builtin.Statuses {
		for _, to := range builtin.Statuses {
			if from.Name == to.Name || t.Status(from.Name) == nil || t.Status(to.Name) == nil {
				continue // repeats follow the terminal flags; missing statuses are reported above
			}
			if builtin.Allows(from.Name, to.Name) && !t.Allows(from.Name, to.Name) {
				p := "/transitions"
				if _, ok := t.Transitions[from.Name]; ok {
					p += "/" + escape(from.Name)
				}
				fail(p, "must keep the built-in transition %s → %s", from.Name, to.Name)
			}
		}
	}
	return errs
}

func equalSchemas(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	return sameSchema(a, b)
}

// maxFields bounds the field errors of one error: data with an array of
// thousands of bad items should not make a response of thousands of
// entries. The message still counts them all.
const maxFields = 100

// invalid returns one EINVALID error listing errs, or nil if there are
// none.
func invalid(errs []herald.FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	msg := errs[0].Pointer + ": " + errs[0].Detail
	if errs[0].Pointer == "" {
		msg = errs[0].Detail
	}
	if len(errs) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(errs)-1)
	}
	return &herald.Error{Code: herald.EINVALID, Message: msg, Fields: errs[:min(len(errs), maxFields)]}
}
