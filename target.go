package herald

import (
	"fmt"
	"net/mail"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Kinds of Target: where a workflow step or an alert sends a message.
const (
	TargetWebhook = "webhook" // a signed POST, as subscriptions send
	TargetEmail   = "email"   // a mail over SMTP
	TargetSlack   = "slack"   // a POST to a Slack incoming-webhook URL
)

// Target is a destination for one message, shared by workflow steps and
// alerts (DESIGN.md §6). The body of a webhook or Slack message is the
// Jsonnet json_template's output when there is one; an email's subject
// and text may come from the template too (an object with subject and
// text, or a string for the text).
type Target struct {
	Kind string `json:"kind"`
	// URL is the webhook's, or the Slack incoming-webhook URL.
	URL string `json:"url,omitempty"`
	// WebhookURL is the Lytics spelling of URL, accepted on input.
	WebhookURL string `json:"webhook_url,omitempty"`
	// Headers are added to a webhook's request.
	Headers      map[string]string `json:"headers,omitempty"`
	JSONTemplate string            `json:"json_template,omitempty"`

	// SMTP, From, To, Subject and Text are an email's.
	SMTP    *SMTPConfig `json:"smtp,omitempty"`
	From    string      `json:"from,omitempty"`
	To      []string    `json:"to,omitempty"`
	Subject string      `json:"subject,omitempty"`
	Text    string      `json:"text,omitempty"`
}

// TLS modes of an SMTP server.
const (
	SMTPStartTLS = "starttls" // plain connection upgraded with STARTTLS (required)
	SMTPTLS      = "tls"      // TLS from the start (port 465)
	SMTPNoTLS    = "none"     // no TLS: only for a relay on a trusted network
)

// SMTPConfig is how to reach a mail server. Password is a secret: the API
// never returns it and system events never record it (see Redacted).
type SMTPConfig struct {
	Host     string `json:"host"`
	Port     int    `json:"port,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS is SMTPStartTLS (default), SMTPTLS or SMTPNoTLS.
	TLS string `json:"tls,omitempty"`
	// InsecureSkipVerify accepts a server certificate that does not
	// verify; for tests and private relays only.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// Redacted stands in for a secret in what the API returns and in system
// events.
const Redacted = "[redacted]"

// SetDefaults fills what was left out: URL from WebhookURL, the SMTP port
// and TLS mode.
func (t *Target) SetDefaults() {
	if t.URL == "" {
		t.URL = t.WebhookURL
	}
	t.WebhookURL = ""
	if t.SMTP != nil {
		if t.SMTP.TLS == "" {
			t.SMTP.TLS = SMTPStartTLS
		}
		if t.SMTP.Port == 0 {
			t.SMTP.Port = 587
			if t.SMTP.TLS == SMTPTLS {
				t.SMTP.Port = 465
			}
		}
	}
}

// Redact returns a copy of t without secrets: the SMTP password and header
// values (which are often credentials) are Redacted.
func (t Target) Redact() Target {
	if len(t.Headers) > 0 {
		h := make(map[string]string, len(t.Headers))
		for k := range t.Headers {
			h[k] = Redacted
		}
		t.Headers = h
	}
	if t.SMTP != nil && t.SMTP.Password != "" {
		c := *t.SMTP
		c.Password = Redacted
		t.SMTP = &c
	}
	return t
}

// KeepSecrets puts back, into t as a client sent it on an update, the
// secrets of old that the client left out or sent back redacted: a client
// that read the definition and sends it back does not erase them.
func (t *Target) KeepSecrets(old Target) {
	if t.SMTP != nil && old.SMTP != nil && (t.SMTP.Password == "" || t.SMTP.Password == Redacted) &&
		t.SMTP.Host == old.SMTP.Host && t.SMTP.Username == old.SMTP.Username {
		t.SMTP.Password = old.SMTP.Password
	}
	for k, v := range t.Headers {
		if v == Redacted {
			t.Headers[k] = old.Headers[k]
		}
	}
}

// Validate checks t, naming fields under prefix. kinds are the kinds the
// caller accepts.
func (t *Target) Validate(prefix string) []FieldError {
	var errs []FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: prefix + pointer, Detail: fmt.Sprintf(format, args...)})
	}
	switch t.Kind {
	case TargetWebhook, TargetSlack:
		if msg := checkHTTPURL(t.URL); msg != "" {
			fail("/url", "%s", msg)
		}
		if t.Kind == TargetSlack && len(t.Headers) > 0 {
			fail("/headers", "must be empty for Slack, whose incoming webhooks take none")
		}
		errs = append(errs, checkHeaders(prefix, t.Headers)...)
	case TargetEmail:
		errs = append(errs, t.validateEmail(prefix)...)
	default:
		fail("/kind", "must be %q, %q or %q", TargetWebhook, TargetEmail, TargetSlack)
	}
	if len(t.JSONTemplate) > 64<<10 {
		fail("/json_template", "must be at most 64 KiB")
	}
	return errs
}

func (t *Target) validateEmail(prefix string) []FieldError {
	var errs []FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: prefix + pointer, Detail: fmt.Sprintf(format, args...)})
	}
	if t.SMTP == nil {
		fail("/smtp", "is required for an email: the mail server's host, port, username, password and tls")
	} else {
		c := t.SMTP
		if c.Host == "" || len(c.Host) > 253 || strings.ContainsAny(c.Host, " /:@") {
			fail("/smtp/host", "must be a host name or address, without port")
		}
		if c.Port < 1 || c.Port > 65535 {
			fail("/smtp/port", "must be between 1 and 65535")
		}
		switch c.TLS {
		case SMTPStartTLS, SMTPTLS, SMTPNoTLS:
		default:
			fail("/smtp/tls", "must be %q, %q or %q", SMTPStartTLS, SMTPTLS, SMTPNoTLS)
		}
		if c.Password != "" && c.Username == "" {
			fail("/smtp/username", "is required with a password")
		}
		if c.Password != "" && c.TLS == SMTPNoTLS {
			fail("/smtp/tls", "must not be %q with a password: it would cross the network in the clear", SMTPNoTLS)
		}
	}
	if _, err := mail.ParseAddress(t.From); err != nil {
		fail("/from", "must be an email address such as alerts@example.com")
	}
	if len(t.To) == 0 || len(t.To) > 50 {
		fail("/to", "must list 1 to 50 email addresses")
	}
	for i, a := range t.To {
		if _, err := mail.ParseAddress(a); err != nil {
			fail(fmt.Sprintf("/to/%d", i), "must be an email address such as risk@example.com")
		}
	}
	if strings.ContainsAny(t.Subject, "\r\n") || len(t.Subject) > 998 {
		fail("/subject", "must be one line of at most 998 characters")
	}
	return errs
}

// checkHTTPURL returns why u is not a URL Herald may post to, or "".
func checkHTTPURL(u string) string {
	p, err := url.Parse(u)
	switch {
	case u == "":
		return "is required"
	case err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil:
		return "must be an http:// or https:// URL with a host and no user info"
	case len(u) > 2048:
		return "must be at most 2048 characters"
	}
	return ""
}

// checkHeaders checks the headers a client adds to a request.
func checkHeaders(prefix string, headers map[string]string) []FieldError {
	var errs []FieldError
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v, p := headers[k], prefix+"/headers/"+escapePointer(k)
		switch {
		case !validHeaderName(k):
			errs = append(errs, FieldError{p, "must be a header name (letters, digits and - only)"})
		case reservedHeaders[strings.ToLower(k)]:
			errs = append(errs, FieldError{p, "is set by Herald"})
		case strings.ContainsAny(v, "\r\n") || len(v) > 4096:
			errs = append(errs, FieldError{p, "must be one line of at most 4096 characters"})
		}
	}
	return errs
}

// Template is one Jsonnet program of a definition and where it is, for
// the API to compile before storing (the root package knows no Jsonnet).
type Template struct {
	Pointer string
	Text    string
}

// invalid wraps field errors as the EINVALID error, or returns nil.
func invalid(errs []FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	return &Error{Code: EINVALID, Message: errs[0].Pointer + ": " + errs[0].Detail, Fields: errs}
}

// checkRetrySchedule checks a schedule of waits between attempts.
func checkRetrySchedule(pointer string, s []Duration) []FieldError {
	var errs []FieldError
	if len(s) > 20 {
		errs = append(errs, FieldError{pointer, "must have at most 20 waits"})
	}
	for i, d := range s {
		if d < Duration(time.Second) || d > Duration(7*24*time.Hour) {
			errs = append(errs, FieldError{fmt.Sprintf("%s/%d", pointer, i), "must be between 1s and 168h"})
		}
	}
	return errs
}
