package httpapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/heraldhq/herald"
)

// maxEventTypeBytes bounds an event type as sent: its schema may make it
// larger than the other admin bodies.
const maxEventTypeBytes = 256 << 10

// eventTypeInput is an event type as a client sends it. The parts that
// are lists or objects are kept raw and decoded one by one, so that an
// error in one is named by its exact pointer.
type eventTypeInput struct {
	// Category and Type may be left out of a PUT, whose path names them.
	Category           *string                    `json:"category"`
	Type               *string                    `json:"type"`
	Description        string                     `json:"description"`
	Schema             json.RawMessage            `json:"schema"`
	Statuses           []json.RawMessage          `json:"statuses"`
	TerminalStatuses   json.RawMessage            `json:"terminalStatuses"`
	Transitions        map[string]json.RawMessage `json:"transitions"`
	LifecycleIDPointer string                     `json:"lifecycleIdPointer"`
	ProfileFields      json.RawMessage            `json:"profileFields"`
	Persist            bool                       `json:"persist"`

	// The fields only the server sets are accepted and ignored, so that a
	// type read with GET can be changed and sent back with PUT as it is.
	BuiltIn   json.RawMessage `json:"builtIn"`
	CreatedAt json.RawMessage `json:"createdAt"`
	UpdatedAt json.RawMessage `json:"updatedAt"`
}

type statusInput struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Workflows   json.RawMessage `json:"workflows"`
	Persist     bool            `json:"persist"`
	BuiltIn     json.RawMessage `json:"builtIn"`
}

// readEventType decodes the body of POST and PUT /v1/event-types, naming
// every field at fault that decoding can find. What the definition means
// (statuses, pointers, the schema) is the catalog's to check.
func readEventType(w http.ResponseWriter, r *http.Request) (*eventTypeInput, *herald.EventType, error) {
	var in eventTypeInput
	if err := decodeJSONUpTo(w, r, maxEventTypeBytes, "an event type", &in); err != nil {
		return nil, nil, err
	}
	var errs []herald.FieldError

	t := &herald.EventType{
		AccountID:          keyFrom(r.Context()).AccountID,
		Description:        in.Description,
		LifecycleIDPointer: in.LifecycleIDPointer,
		Persist:            in.Persist,
	}
	if in.Category != nil {
		t.Category = *in.Category
	}
	if in.Type != nil {
		t.Type = *in.Type
	}
	if !isNull(in.Schema) {
		t.Schema = in.Schema
	}
	// A list left out stays nil, which is not the same as empty: the
	// catalog completes an extension of a built-in type from the
	// built-in's lists where the client left them out.
	if in.Statuses != nil {
		t.Statuses = []herald.StatusDef{}
	}
	for i, raw := range in.Statuses {
		p := fmt.Sprintf("/statuses/%d", i)
		var s statusInput
		if fe := decodeAt(raw, p, &s); fe != nil {
			errs = append(errs, *fe)
			continue
		}
		workflows, wErrs := decodeStrings(s.Workflows, p+"/workflows")
		errs = append(errs, wErrs...)
		t.Statuses = append(t.Statuses, herald.StatusDef{Name: s.Name, Description: s.Description, Workflows: workflows, Persist: s.Persist})
	}
	var listErrs []herald.FieldError
	t.TerminalStatuses, listErrs = decodeStrings(in.TerminalStatuses, "/terminalStatuses")
	errs = append(errs, listErrs...)
	if in.Transitions != nil {
		t.Transitions = make(map[string][]string, len(in.Transitions))
		for _, from := range slices.Sorted(maps.Keys(in.Transitions)) {
			to, toErrs := decodeStrings(in.Transitions[from], "/transitions/"+escapePointer(from))
			errs = append(errs, toErrs...)
			if to == nil {
				to = []string{}
			}
			t.Transitions[from] = to
		}
	}
	t.ProfileFields, listErrs = decodeStrings(in.ProfileFields, "/profileFields")
	errs = append(errs, listErrs...)
	if err := fieldErrors(errs); err != nil {
		return nil, nil, err
	}
	return &in, t, nil
}

// decodeStrings decodes raw, at pointer, as an array of strings, naming a
// bad item by its index. Absent or null is nil.
func decodeStrings(raw json.RawMessage, pointer string) ([]string, []herald.FieldError) {
	if raw == nil || isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if fe := decodeAt(raw, pointer, &items); fe != nil {
		return nil, []herald.FieldError{*fe}
	}
	var errs []herald.FieldError
	out := make([]string, 0, len(items))
	for i, item := range items {
		var s string
		if fe := decodeAt(item, fmt.Sprintf("%s/%d", pointer, i), &s); fe != nil || isNull(item) {
			errs = append(errs, herald.FieldError{Pointer: fmt.Sprintf("%s/%d", pointer, i), Detail: "must be a string"})
			continue
		}
		out = append(out, s)
	}
	return out, errs
}

// eventTypeView is a type as the API shows it: lists that are empty are
// shown as [], never null.
func eventTypeView(t *herald.EventType) *herald.EventType {
	c := *t // the catalog may share t with other requests: change a copy
	if c.Statuses == nil {
		c.Statuses = []herald.StatusDef{}
	}
	if c.TerminalStatuses == nil {
		c.TerminalStatuses = []string{}
	}
	return &c
}

func eventTypeLocation(t *herald.EventType) string {
	return "/v1/event-types/" + url.PathEscape(t.Category) + "/" + url.PathEscape(t.Type)
}

// createEventType adds a type to the caller's account: 201, or 409 when
// the account has it already.
func (s *Server) createEventType(w http.ResponseWriter, r *http.Request) error {
	_, t, err := readEventType(w, r)
	if err != nil {
		return err
	}
	if err := s.catalog.CreateEventType(r.Context(), t); err != nil {
		return fmt.Errorf("create event type %s: %w", t.Key(), err)
	}
	return s.answerEventType(w, r, t.AccountID, t.Category, t.Type, http.StatusCreated)
}

// putEventType creates or replaces a type: 201 or 200. The path names the
// type; the body may leave category and type out, and must not contradict
// the path when it has them.
func (s *Server) putEventType(w http.ResponseWriter, r *http.Request) error {
	category, typ := r.PathValue("category"), r.PathValue("type")
	in, t, err := readEventType(w, r)
	if err != nil {
		return err
	}
	var errs []herald.FieldError
	if in.Category != nil && *in.Category != category {
		errs = append(errs, herald.FieldError{Pointer: "/category", Detail: fmt.Sprintf("is %q but the path names category %q; leave it out or make them agree", *in.Category, category)})
	}
	if in.Type != nil && *in.Type != typ {
		errs = append(errs, herald.FieldError{Pointer: "/type", Detail: fmt.Sprintf("is %q but the path names type %q; leave it out or make them agree", *in.Type, typ)})
	}
	if err := fieldErrors(errs); err != nil {
		return err
	}
	t.Category, t.Type = category, typ
	created, err := s.catalog.PutEventType(r.Context(), t)
	if err != nil {
		return fmt.Errorf("put event type %s: %w", t.Key(), err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return s.answerEventType(w, r, t.AccountID, category, typ, status)
}

// answerEventType answers with the type as the catalog now has it, which
// for a built-in type is the account's changes merged into the defaults.
func (s *Server) answerEventType(w http.ResponseWriter, r *http.Request, accountID, category, typ string, status int) error {
	t, err := s.catalog.EventType(r.Context(), accountID, category, typ)
	if err != nil {
		return fmt.Errorf("read back event type %s/%s: %w", category, typ, err)
	}
	w.Header().Set("Location", eventTypeLocation(t))
	writeJSON(w, status, eventTypeView(t))
	return nil
}

type eventTypeList struct {
	EventTypes []*herald.EventType `json:"eventTypes"`
}

// listEventTypes lists the account's types, the built-in ones included.
func (s *Server) listEventTypes(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	types, err := s.catalog.EventTypes(r.Context(), key.AccountID)
	if err != nil {
		return fmt.Errorf("list event types: %w", err)
	}
	out := eventTypeList{EventTypes: make([]*herald.EventType, len(types))}
	for i, t := range types {
		out.EventTypes[i] = eventTypeView(t)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getEventType(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	category, typ := r.PathValue("category"), r.PathValue("type")
	t, err := s.catalog.EventType(r.Context(), key.AccountID, category, typ)
	if err != nil {
		return fmt.Errorf("find event type %s/%s: %w", category, typ, err)
	}
	writeJSON(w, http.StatusOK, eventTypeView(t))
	return nil
}

// deleteEventType deletes a type the account defined, or undoes its
// changes to a built-in one. The type's events are kept.
func (s *Server) deleteEventType(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	category, typ := r.PathValue("category"), r.PathValue("type")
	if err := s.catalog.DeleteEventType(r.Context(), key.AccountID, category, typ); err != nil {
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getSchema serves a type's data schema by its name, <type>EventSchema,
// as a JSON Schema document that validators can fetch.
func (s *Server) getSchema(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	name := r.PathValue("name")
	schema, err := s.catalog.Schema(r.Context(), key.AccountID, name)
	if err != nil {
		return fmt.Errorf("find schema %s: %w", name, err)
	}
	writeBody(w, http.StatusOK, "application/schema+json", schema)
	return nil
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	settings, err := s.catalog.Settings(r.Context(), key.AccountID)
	if err != nil {
		return fmt.Errorf("find settings: %w", err)
	}
	writeJSON(w, http.StatusOK, settingsView(settings))
	return nil
}

// putSettings replaces the account's settings. A field left out takes its
// default, as for an account that never changed it: the body is decoded
// over the defaults, so {"sessions":{"maxLength":"8h"}} changes that one
// duration and keeps the other session settings.
func (s *Server) putSettings(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	in, err := readSettings(w, r)
	if err != nil {
		return err
	}
	if err := in.Validate(); err != nil {
		return err
	}
	if err := s.catalog.PutSettings(r.Context(), key.AccountID, in); err != nil {
		return fmt.Errorf("put settings: %w", err)
	}
	settings, err := s.catalog.Settings(r.Context(), key.AccountID)
	if err != nil {
		return fmt.Errorf("read back settings: %w", err)
	}
	writeJSON(w, http.StatusOK, settingsView(settings))
	return nil
}

// settingsInput is the body of PUT /v1/settings. The objects are kept raw
// and decoded one by one, so that an error within one is named by its
// exact pointer: encoding/json names neither the object of an unknown
// field nor the field of a bad duration.
type settingsInput struct {
	UnknownTypes  *string         `json:"unknownTypes"`
	Sessions      json.RawMessage `json:"sessions"`
	Visits        json.RawMessage `json:"visits"`
	JourneyEvents json.RawMessage `json:"journeyEvents"`
}

// readSettings decodes the body of PUT /v1/settings over the defaults,
// naming every field at fault.
func readSettings(w http.ResponseWriter, r *http.Request) (*herald.Settings, error) {
	var in settingsInput
	if err := decodeJSON(w, r, &in); err != nil {
		return nil, err
	}
	out := herald.DefaultSettings()
	if in.UnknownTypes != nil && *in.UnknownTypes != "" { // empty means the default
		out.UnknownTypes = *in.UnknownTypes
	}
	var errs []herald.FieldError
	for _, part := range []struct {
		name string
		raw  json.RawMessage
		to   any
	}{
		{"sessions", in.Sessions, &out.Sessions},
		{"visits", in.Visits, &out.Visits},
		{"journeyEvents", in.JourneyEvents, &out.JourneyEvents},
	} {
		if part.raw == nil {
			continue
		}
		if fe := decodeAt(part.raw, "/"+part.name, part.to); fe != nil {
			if d := badDuration(part.raw, "/"+part.name); d != nil {
				fe = d
			}
			errs = append(errs, *fe)
		}
	}
	if err := fieldErrors(errs); err != nil {
		return nil, err
	}
	return out, nil
}

// badDuration names the first member of obj, the JSON object at pointer,
// that is meant to be a duration but does not decode as one.
func badDuration(obj json.RawMessage, pointer string) *herald.FieldError {
	var members map[string]json.RawMessage
	if json.Unmarshal(obj, &members) != nil {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(members)) {
		if !slices.Contains(durationMembers, pointer+"/"+name) {
			continue
		}
		var d herald.Duration
		if err := d.UnmarshalJSON(members[name]); err != nil {
			return &herald.FieldError{Pointer: pointer + "/" + name, Detail: err.Error()}
		}
	}
	return nil
}

// durationMembers are the pointers of the durations of the settings.
var durationMembers = []string{"/sessions/inactivityTimeout", "/sessions/maxLength", "/visits/timeout"}

// settingsView is settings as the API shows them: a list that is empty is
// [], never null.
func settingsView(s *herald.Settings) *herald.Settings {
	c := *s
	if c.Sessions.LoginTypes == nil {
		c.Sessions.LoginTypes = []string{}
	}
	if c.Sessions.LogoutTypes == nil {
		c.Sessions.LogoutTypes = []string{}
	}
	return &c
}
