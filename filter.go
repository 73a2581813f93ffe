package herald

import (
	"fmt"
	"slices"
	"sort"
)

// Filter is the filter language shared by the audit log and, later,
// subscriptions, exports and alerts. Its keys are Lytics' system event
// filter keys, as Lytics job configs write them:
//
//   - system_event_type: one verb;
//   - system_event_multiple_types: several verbs (empty: any);
//   - system_event_sources: subject types mapped to subject ids, where an
//     empty list means every subject of that type (empty map: any).
//
// The verbs of both keys add up: an event with any of them matches.
type Filter struct {
	SystemEventType          string              `json:"system_event_type,omitempty"`
	SystemEventMultipleTypes []string            `json:"system_event_multiple_types,omitempty"`
	SystemEventSources       map[string][]string `json:"system_event_sources,omitempty"`
}

// Verbs returns the verbs the filter selects, sorted; none means any.
func (f *Filter) Verbs() []string {
	var verbs []string
	if f.SystemEventType != "" {
		verbs = append(verbs, f.SystemEventType)
	}
	for _, v := range f.SystemEventMultipleTypes {
		if !slices.Contains(verbs, v) {
			verbs = append(verbs, v)
		}
	}
	sort.Strings(verbs)
	return verbs
}

// Validate checks the filter, naming the field at fault by JSON Pointer
// under prefix.
func (f *Filter) Validate(prefix string) error {
	var errs []FieldError
	fail := func(pointer, detail string) {
		errs = append(errs, FieldError{Pointer: prefix + pointer, Detail: detail})
	}
	if f.SystemEventType != "" && !validName(f.SystemEventType) {
		fail("/system_event_type", "must be a verb such as \"failed\"")
	}
	for i, v := range f.SystemEventMultipleTypes {
		if !validName(v) {
			fail(fmt.Sprintf("/system_event_multiple_types/%d", i), "must be a verb such as \"updated\"")
		}
	}
	types := make([]string, 0, len(f.SystemEventSources))
	for t := range f.SystemEventSources {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		if !validName(t) {
			fail("/system_event_sources/"+escapePointer(t), "must be a subject type such as \"work\"")
		}
		for i, id := range f.SystemEventSources[t] {
			if id == "" || len(id) > maxFieldLength {
				fail(fmt.Sprintf("/system_event_sources/%s/%d", escapePointer(t), i), "must be a subject id of 1 to 512 characters")
			}
		}
	}
	if len(errs) > 0 {
		return &Error{Code: EINVALID, Message: errs[0].Pointer + ": " + errs[0].Detail, Fields: errs}
	}
	return nil
}

// validName reports whether s can be a verb or subject type: 1 to 64
// letters, digits, '-', '_' or '.'.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// ApplyTo narrows ef, a query of system events, to what the filter
// selects.
func (f *Filter) ApplyTo(ef *EventFilter) {
	if verbs := f.Verbs(); len(verbs) > 0 {
		ef.Types = verbs
	}
	if len(f.SystemEventSources) > 0 {
		ef.Sources = f.SystemEventSources
	}
}

// Match reports whether the system event e passes the filter.
func (f *Filter) Match(e *Event) bool {
	if verbs := f.Verbs(); len(verbs) > 0 && !slices.Contains(verbs, e.Type) {
		return false
	}
	return MatchSources(f.SystemEventSources, e)
}

// MatchSources reports whether e is of one of the sources: a category
// whose list is empty or holds e's primary id. No sources match all.
func MatchSources(sources map[string][]string, e *Event) bool {
	if len(sources) == 0 {
		return true
	}
	ids, ok := sources[e.Category]
	return ok && (len(ids) == 0 || slices.Contains(ids, e.PrimaryID))
}
