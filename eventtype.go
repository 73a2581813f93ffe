package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// EventType describes one kind of event an account sends (DESIGN.md §2):
// the schema its data must follow, the eventStatus values it may carry and
// what each of them means for lifecycles, profiles and workflows.
//
// Events of a registered type are validated on ingest; events of other
// types are accepted as they are or refused, as Settings.UnknownTypes says.
type EventType struct {
	Category    string `json:"category"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
	// Schema is a JSON Schema (2020-12) for the event's data, served as
	// <type>EventSchema. Nil accepts any data.
	Schema json.RawMessage `json:"schema,omitempty"`
	// Statuses are the eventStatus values the type allows. An event
	// without eventStatus is always allowed.
	Statuses []StatusDef `json:"statuses"`
	// TerminalStatuses end a lifecycle: a later event never replaces a
	// terminal status with a non-terminal one. Each must be in Statuses.
	TerminalStatuses []string `json:"terminalStatuses"`
	// Transitions, when set, lists for each status the statuses that may
	// follow it in a lifecycle (by occurredAt). A status that is not a
	// key may be followed by none. Repeating a non-terminal status is
	// always allowed. Nil or empty allows any order.
	Transitions map[string][]string `json:"transitions,omitempty"`
	// LifecycleIDPointer is the JSON Pointer, into the event's data (it
	// starts with /data/), of the value that becomes eventLifecycleId when
	// the client sends none: /data/external_transaction_id, for example.
	LifecycleIDPointer string `json:"lifecycleIdPointer,omitempty"`
	// ProfileFields are the JSON Pointers, into the event's data (each
	// starts with /data/), of the values that persist to the entity
	// profile. Empty persists every top-level field of data.
	ProfileFields []string `json:"profileFields,omitempty"`
	// Persist says whether the data of events sent without eventStatus
	// persists to the profile; for the others, their status says.
	Persist bool `json:"persist,omitempty"`
	// BuiltIn marks a type of the built-in catalog: an account may extend
	// it but not remove what it defines.
	BuiltIn   bool      `json:"builtIn"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`

	AccountID string `json:"-"`
}

// StatusDef is one eventStatus value of a type and what it triggers.
type StatusDef struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Workflows run, in order, for each event stored with this status.
	Workflows []string `json:"workflows,omitempty"`
	// Persist says whether the data of events with this status persists
	// to the entity profile (a login attempted does not; succeeded does).
	Persist bool `json:"persist,omitempty"`
	// BuiltIn marks a status of the built-in catalog, which an account
	// cannot remove.
	BuiltIn bool `json:"builtIn,omitempty"`
}

// SchemaName is the name under which the type's data schema is served.
func (t *EventType) SchemaName() string { return t.Type + "EventSchema" }

// Key is "category/type", the type's name in lists and counts.
func (t *EventType) Key() string { return t.Category + "/" + t.Type }

// Status returns the definition of the named status, or nil.
func (t *EventType) Status(name string) *StatusDef {
	for i := range t.Statuses {
		if t.Statuses[i].Name == name {
			return &t.Statuses[i]
		}
	}
	return nil
}

// StatusNames lists the allowed statuses, in the order defined.
func (t *EventType) StatusNames() []string {
	names := make([]string, len(t.Statuses))
	for i, s := range t.Statuses {
		names[i] = s.Name
	}
	return names
}

// Terminal reports whether status ends a lifecycle of this type.
func (t *EventType) Terminal(status string) bool {
	return t != nil && status != "" && slices.Contains(t.TerminalStatuses, status)
}

// Persists reports whether the data of an event with status persists to
// the entity profile.
func (t *EventType) Persists(status string) bool {
	if t == nil {
		return false
	}
	if status == "" {
		return t.Persist
	}
	s := t.Status(status)
	return s != nil && s.Persist
}

// Allows reports whether status to may follow status from in a lifecycle.
func (t *EventType) Allows(from, to string) bool {
	if t == nil || len(t.Transitions) == 0 || from == "" || to == "" {
		return true
	}
	if from == to && !t.Terminal(from) {
		return true
	}
	return slices.Contains(t.Transitions[from], to)
}

// Validate checks the parts of a definition that need no schema compiler:
// names, statuses, terminal statuses, transitions and pointers. The
// errors name each field at fault by JSON Pointer into the definition.
func (t *EventType) Validate() error {
	var errs []FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)})
	}
	if d := checkName(t.Category); d != "" {
		fail("/category", "%s", d)
	}
	if d := checkName(t.Type); d != "" {
		fail("/type", "%s", d)
	}
	if len(t.Description) > 1024 {
		fail("/description", "must be at most 1024 bytes long")
	}
	seen := map[string]bool{}
	for i, s := range t.Statuses {
		p := fmt.Sprintf("/statuses/%d", i)
		switch {
		case checkName(s.Name) != "":
			fail(p+"/name", "%s", checkName(s.Name))
		case seen[s.Name]:
			fail(p+"/name", "%q is listed twice", s.Name)
		}
		seen[s.Name] = true
		if len(s.Description) > 1024 {
			fail(p+"/description", "must be at most 1024 bytes long")
		}
		for j, w := range s.Workflows {
			if d := checkName(w); d != "" {
				fail(fmt.Sprintf("%s/workflows/%d", p, j), "%s", d)
			}
		}
	}
	for i, name := range t.TerminalStatuses {
		if !seen[name] {
			fail(fmt.Sprintf("/terminalStatuses/%d", i), "%q is not one of the type's statuses (%s)", name, listOrNone(t.StatusNames()))
		}
	}
	for _, from := range sortedKeys(t.Transitions) {
		p := "/transitions/" + escapePointer(from)
		if !seen[from] {
			fail(p, "%q is not one of the type's statuses (%s)", from, listOrNone(t.StatusNames()))
		}
		for j, to := range t.Transitions[from] {
			if !seen[to] {
				fail(fmt.Sprintf("%s/%d", p, j), "%q is not one of the type's statuses (%s)", to, listOrNone(t.StatusNames()))
			}
		}
	}
	if t.LifecycleIDPointer != "" {
		if d := checkPointer(t.LifecycleIDPointer, "/data/"); d != "" {
			fail("/lifecycleIdPointer", "%s", d)
		}
	}
	for i, p := range t.ProfileFields {
		if d := checkPointer(p, "/data/"); d != "" {
			fail(fmt.Sprintf("/profileFields/%d", i), "%s", d)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &Error{Code: EINVALID, Message: fmt.Sprintf("%s: %s", errs[0].Pointer, errs[0].Detail), Fields: errs}
}

// checkPointer returns why p is not a JSON Pointer (RFC 6901) starting
// with prefix, or "".
func checkPointer(p, prefix string) string {
	if !strings.HasPrefix(p, "/") {
		return fmt.Sprintf("%q is not a JSON Pointer: it must start with /", p)
	}
	if prefix != "" && (!strings.HasPrefix(p, prefix) || len(p) == len(prefix)) {
		return fmt.Sprintf("%q must point into data: start with %s", p, prefix)
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || p[i+1] != '0' && p[i+1] != '1') {
			return fmt.Sprintf("%q is not a JSON Pointer: ~ must be followed by 0 or 1", p)
		}
	}
	return ""
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none are defined"
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ResolvePointer returns the value at the JSON Pointer p (RFC 6901) in
// the JSON document doc, which must be valid JSON, and whether there is
// one.
func ResolvePointer(doc json.RawMessage, p string) (json.RawMessage, bool) {
	return pointerValue(doc, p)
}

var pointerUnescaper = strings.NewReplacer("~1", "/", "~0", "~")

// EventTypeService stores the event types an account has defined or
// changed. Built-in types that an account has not changed are not stored:
// the catalog package merges them in.
type EventTypeService interface {
	// FindEventTypes returns the account's stored types, by category and
	// type.
	FindEventTypes(ctx context.Context, accountID string) ([]*EventType, error)
	// FindEventType returns ENOTFOUND if the account stores no such type.
	FindEventType(ctx context.Context, accountID, category, typ string) (*EventType, error)
	// CreateEventType stores t, which must be new: ECONFLICT if the
	// account has a type of that category and name (or of that name in
	// another category), ENOTFOUND if there is no such account.
	CreateEventType(ctx context.Context, t *EventType) error
	// PutEventType creates or replaces t (by account, category and type)
	// and reports whether it created it. CreatedAt is kept on replace.
	// ECONFLICT if another category of the account has a type of the
	// same name: schema names (<type>EventSchema) must be unique.
	PutEventType(ctx context.Context, t *EventType) (created bool, err error)
	// DeleteEventType returns ENOTFOUND if the account stores no such
	// type. Events of the type are kept.
	DeleteEventType(ctx context.Context, accountID, category, typ string) error
}
