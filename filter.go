package herald

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
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
// The verbs of both keys add up: an event with any of them matches. A
// filter that names verbs or sources selects system events only.
//
// The envelope keys select any event: each list matches an event with any
// of its values, and the keys narrow each other. Types are patterns: "*"
// stands for any run of characters; a pattern with a "/" is matched
// against "category/type", one without against the type alone.
type Filter struct {
	SystemEventType          string              `json:"system_event_type,omitempty"`
	SystemEventMultipleTypes []string            `json:"system_event_multiple_types,omitempty"`
	SystemEventSources       map[string][]string `json:"system_event_sources,omitempty"`

	Categories []string `json:"categories,omitempty"`
	Types      []string `json:"types,omitempty"`
	Statuses   []string `json:"statuses,omitempty"`
	// Origin is OriginAPI or OriginSystem; empty for both.
	Origin string `json:"origin,omitempty"`
	// Entity selects the events of one entity (Event.EntityID).
	Entity string `json:"entity,omitempty"`
}

// systemOnly reports whether the filter uses the Lytics keys, which are
// about system events.
func (f *Filter) systemOnly() bool {
	return f.SystemEventType != "" || len(f.SystemEventMultipleTypes) > 0 || len(f.SystemEventSources) > 0
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
	for i, c := range f.Categories {
		if !validName(c) {
			fail(fmt.Sprintf("/categories/%d", i), "must be a category such as \"transfers\"")
		}
	}
	for i, t := range f.Types {
		if _, err := path.Match(t, ""); err != nil || t == "" || len(t) > 2*64+1 || strings.Count(t, "/") > 1 {
			fail(fmt.Sprintf("/types/%d", i), "must be a type or a pattern such as \"single*\" or \"transfers/*\"")
		}
	}
	for i, s := range f.Statuses {
		if !validName(s) {
			fail(fmt.Sprintf("/statuses/%d", i), "must be an event status such as \"succeeded\"")
		}
	}
	switch f.Origin {
	case "", OriginAPI, OriginSystem:
	default:
		fail("/origin", fmt.Sprintf("must be %q or %q", OriginAPI, OriginSystem))
	}
	if f.Origin == OriginAPI && f.systemOnly() {
		fail("/origin", "must not be \"api\" with system_event_* keys, which select system events")
	}
	if len(f.Entity) > maxFieldLength {
		fail("/entity", "must be at most 512 characters")
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

// ApplyTo narrows ef, a store query, as far as a store can filter; a
// caller that reads with it must still Match what it reads (type
// patterns, several categories or statuses are left to Match).
func (f *Filter) ApplyTo(ef *EventFilter) {
	switch {
	case f.Origin != "":
		ef.Origin = f.Origin
	case f.systemOnly():
		ef.Origin = OriginSystem
	}
	if f.Entity != "" {
		ef.EntityID = f.Entity
	}
	if len(f.Categories) == 1 {
		ef.Category = f.Categories[0]
	}
	if len(f.Statuses) == 1 {
		ef.EventStatus = f.Statuses[0]
	}
	if verbs := f.Verbs(); len(verbs) > 0 {
		ef.Types = verbs
	}
	if len(f.SystemEventSources) > 0 {
		ef.Sources = f.SystemEventSources
	}
}

// Match reports whether e passes the filter.
func (f *Filter) Match(e *Event) bool {
	switch {
	case f.Origin != "" && e.Origin != f.Origin,
		f.systemOnly() && e.Origin != OriginSystem,
		len(f.Categories) > 0 && !slices.Contains(f.Categories, e.Category),
		len(f.Statuses) > 0 && !slices.Contains(f.Statuses, e.EventStatus),
		f.Entity != "" && e.EntityID() != f.Entity,
		len(f.Types) > 0 && !matchAnyType(f.Types, e.Category, e.Type):
		return false
	}
	if verbs := f.Verbs(); len(verbs) > 0 && !slices.Contains(verbs, e.Type) {
		return false
	}
	return MatchSources(f.SystemEventSources, e)
}

// matchAnyType reports whether one of the patterns matches the type.
func matchAnyType(patterns []string, category, typ string) bool {
	for _, p := range patterns {
		name := typ
		if strings.Contains(p, "/") {
			name = category + "/" + typ
		}
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
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
