package herald

import (
	"errors"
	"fmt"
)

// Error codes. They are few on purpose: each maps to one HTTP status in
// httpapi, and callers branch on them with ErrorCode.
const (
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	ECONFLICT     = "conflict"
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
	ETOOLARGE     = "too_large"
	EINTERNAL     = "internal"
)

// FieldError names one field at fault, by JSON Pointer (RFC 6901), and the
// rule it broke.
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

// Error is the one error type that carries a message meant for the user.
// Anything that is not an *Error reaching the API is an internal error: it is
// logged and the user sees only a reference id.
type Error struct {
	Code    string
	Message string
	// Fields lists the fields at fault, for EINVALID (and ETOOLARGE).
	Fields []FieldError
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("herald: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("herald: %s: %s (%s: %s)", e.Code, e.Message, e.Fields[0].Pointer, e.Fields[0].Detail)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID error about one field.
func FieldErrorf(pointer, format string, args ...any) *Error {
	detail := fmt.Sprintf(format, args...)
	return &Error{Code: EINVALID, Message: pointer + ": " + detail, Fields: []FieldError{{Pointer: pointer, Detail: detail}}}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, and
// EINTERNAL otherwise. A nil error has no code.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the user-facing message of err, or "internal error"
// when err is not an *Error.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}
