package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/heraldhq/herald"
)

// The Lytics filter keys, taken as query parameters as they are.
const (
	paramSystemEventType          = "system_event_type"
	paramSystemEventMultipleTypes = "system_event_multiple_types"
	paramSystemEventSources       = "system_event_sources"
)

// auditQueryParams are the query parameters of GET /v1/audit.
var auditQueryParams = []string{
	paramSystemEventType, paramSystemEventMultipleTypes, paramSystemEventSources,
	"subjectType", "subjectId", "verb", "agentId",
	"occurredAfter", "occurredBefore", "afterSeq", "limit", "next",
}

// auditRepeatable may be given more than once: Lytics clients send a list
// either comma separated or as repeated parameters.
var auditRepeatable = []string{paramSystemEventMultipleTypes}

// maxSourcesLength bounds system_event_sources, a JSON object that may
// list many ids.
const maxSourcesLength = 8 << 10

// parseAuditQuery reads the query of GET /v1/audit into a query of the
// account's system events, naming every bad parameter at once.
func parseAuditQuery(q url.Values) (eventPage, error) {
	var p eventPage
	qp := &queryParser{q: q}
	f := parseLyticsFilter(qp)
	if err := f.Validate(""); err != nil {
		qp.errs = append(qp.errs, paramFieldErrors(err)...)
	}
	var verb string
	qp.text("verb", &verb)
	if verb != "" {
		if (&herald.Filter{SystemEventType: verb}).Validate("") != nil {
			qp.fail("verb", "must be a verb such as \"failed\"")
		}
	}
	qp.text("subjectType", &p.filter.Category)
	qp.text("subjectId", &p.filter.PrimaryID)
	qp.text("agentId", &p.filter.AgentID)
	qp.timeRange("occurredAfter", "occurredBefore", &p.filter.OccurredAfter, &p.filter.OccurredBefore)
	qp.page(&p.filter.AfterSeq, &p.limit)
	if err := qp.err(); err != nil {
		return eventPage{}, err
	}
	p.filter.Origin = herald.OriginSystem
	f.ApplyTo(&p.filter)
	// verb adds to the Lytics verbs, as they add to each other.
	if verb != "" && !slices.Contains(p.filter.Types, verb) {
		p.filter.Types = append(slices.Clone(p.filter.Types), verb)
		slices.Sort(p.filter.Types)
	}
	return p, nil
}

// parseLyticsFilter reads the Lytics filter keys, failing those that
// cannot be read at all; Filter.Validate checks what they hold.
func parseLyticsFilter(qp *queryParser) herald.Filter {
	var f herald.Filter
	qp.text(paramSystemEventType, &f.SystemEventType)
	for _, v := range qp.q[paramSystemEventMultipleTypes] {
		if v == "" {
			qp.fail(paramSystemEventMultipleTypes, "must not be empty (leave the parameter out to match any verb)")
			continue
		}
		for _, verb := range strings.Split(v, ",") {
			f.SystemEventMultipleTypes = append(f.SystemEventMultipleTypes, strings.TrimSpace(verb))
		}
	}
	if v, found := qp.q[paramSystemEventSources]; found {
		sources, err := decodeSources(v[0])
		if err != nil {
			qp.fail(paramSystemEventSources, "%s", err)
		} else {
			f.SystemEventSources = sources
		}
	}
	return f
}

// decodeSources reads system_event_sources: a JSON object of subject types
// to lists of subject ids.
func decodeSources(v string) (map[string][]string, error) {
	shape := `must be a JSON object of subject types to lists of subject ids, ` +
		`such as {"work":["id-1"]} ({"work":[]} selects every work)`
	if len(v) > maxSourcesLength {
		return nil, fmt.Errorf("must be at most %d bytes long", maxSourcesLength)
	}
	var sources map[string][]string
	dec := json.NewDecoder(strings.NewReader(v))
	if err := dec.Decode(&sources); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("is not valid JSON: %s", shape)
		}
		return nil, fmt.Errorf("%s", shape)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("holds more than one JSON value: %s", shape)
	}
	if sources == nil {
		return nil, fmt.Errorf("%s", shape) // null
	}
	return sources, nil
}

// paramFieldErrors turns the errors of Filter.Validate, whose pointers are
// "/<key>/…", into errors of the query parameter <key>: "?<key>/…", the
// rest being the place within the parameter's value.
func paramFieldErrors(err error) []herald.FieldError {
	var out []herald.FieldError
	var e *herald.Error
	if !errors.As(err, &e) {
		return []herald.FieldError{{Pointer: "", Detail: err.Error()}}
	}
	for _, fe := range e.Fields {
		name, rest, _ := strings.Cut(strings.TrimPrefix(fe.Pointer, "/"), "/")
		pointer := paramPointer(name)
		if rest != "" {
			pointer += "/" + rest
		}
		out = append(out, herald.FieldError{Pointer: pointer, Detail: fe.Detail})
	}
	if len(out) == 0 {
		out = append(out, herald.FieldError{Pointer: "", Detail: e.Message})
	}
	return out
}

// findAudit answers one page of the account's audit log: its system
// events, selected by the Lytics filter keys and by subject, verb, agent
// and time, and paged as GET /v1/events is.
func (s *Server) findAudit(w http.ResponseWriter, r *http.Request) error {
	p, err := parseAuditQuery(r.URL.Query())
	if err != nil {
		return err
	}
	return s.writeEventPage(w, r, p)
}

// verifyAudit walks the account's chain of system events and answers the
// report: 200 whether the chain holds or not, since the check itself
// succeeded either way.
func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	report, err := s.audit.VerifyAudit(r.Context(), key.AccountID)
	if err != nil {
		return fmt.Errorf("verify the audit chain: %w", err)
	}
	writeJSON(w, http.StatusOK, report)
	return nil
}
