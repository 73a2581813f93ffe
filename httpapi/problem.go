package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/heraldhq/herald"
)

// problemTypeBase prefixes every problem type: one stable URI per kind of
// failure, so clients can branch on type rather than on title text.
const problemTypeBase = "https://herald.dev/problems/"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance,omitempty"`
	// Errors names the fields at fault: a JSON Pointer into the body, or
	// "?name" for a query parameter.
	Errors []herald.FieldError `json:"errors,omitempty"`
}

// problemKind is what a problem type stands for.
type problemKind struct {
	slug   string
	title  string
	status int
}

var (
	kindInvalid          = problemKind{"invalid", "Invalid request", http.StatusBadRequest}
	kindUnauthorized     = problemKind{"unauthorized", "Unauthorized", http.StatusUnauthorized}
	kindForbidden        = problemKind{"forbidden", "Forbidden", http.StatusForbidden}
	kindNotFound         = problemKind{"not-found", "Not found", http.StatusNotFound}
	kindMethodNotAllowed = problemKind{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed}
	kindConflict         = problemKind{"conflict", "Conflict", http.StatusConflict}
	kindTooLarge         = problemKind{"too-large", "Content too large", http.StatusRequestEntityTooLarge}
	kindInternal         = problemKind{"internal", "Internal error", http.StatusInternalServerError}
	kindUnavailable      = problemKind{"unavailable", "Service unavailable", http.StatusServiceUnavailable}
	// kindAborted marks a valid item of an atomic batch that was not stored
	// because another item failed. Its status is the batch's.
	kindAborted = problemKind{"aborted", "Not stored", 0}
)

// kindOf maps an error code to its kind. Codes unknown here are internal:
// only the codes httpapi knows may reach a user.
func kindOf(code string) problemKind {
	switch code {
	case herald.EINVALID:
		return kindInvalid
	case herald.EUNAUTHORIZED:
		return kindUnauthorized
	case herald.EFORBIDDEN:
		return kindForbidden
	case herald.ENOTFOUND:
		return kindNotFound
	case herald.ECONFLICT:
		return kindConflict
	case herald.ETOOLARGE:
		return kindTooLarge
	default:
		return kindInternal
	}
}

func (k problemKind) problem(detail string) *Problem {
	return &Problem{Type: problemTypeBase + k.slug, Title: k.title, Status: k.status, Detail: detail}
}

// problemFor turns a user-facing error into a problem. It must not be given
// an internal error: those need a ref (see Server.internal).
func problemFor(e *herald.Error) *Problem {
	p := kindOf(e.Code).problem(e.Message)
	p.Errors = e.Fields
	return p
}

// writeProblem sends p as application/problem+json, with the request path
// as its instance.
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	info := infoFrom(r.Context())
	if info != nil && info.detail == "" {
		info.detail = p.Detail
	}
	writeBody(w, p.Status, "application/problem+json", p)
}

// writeJSON sends v as application/json.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, "application/json", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // ids and details are shown as sent
	if err := enc.Encode(v); err != nil {
		// Only our own response types reach here, and they always encode;
		// should one not, the client still gets a problem.
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"type":"` + problemTypeBase + `internal","title":"Internal error","status":500,"detail":"internal error"}` + "\n"))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
