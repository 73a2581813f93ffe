package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
)

// DefaultTimeout bounds a send whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// Options configure a Sender.
type Options struct {
	// Client makes webhook and Slack requests; its guard decides whether
	// private addresses may be reached. Default: a new guarded client
	// (private addresses allowed only with AllowPrivate).
	Client *delivery.Client
	// AllowPrivate lets SMTP connections reach loopback, private and
	// metadata addresses: for tests and local use only.
	AllowPrivate bool
	// Templates caches compiled json_templates; default: the Sender's own.
	Templates *delivery.Templates
	// Now is the clock of webhook-timestamp and the email Date.
	Now func() time.Time
}

// Sender sends messages to targets. It is safe for concurrent use.
type Sender struct {
	client       *delivery.Client
	allowPrivate bool
	templates    *delivery.Templates
	now          func() time.Time
}

// New returns a Sender.
func New(opts Options) *Sender {
	s := &Sender{client: opts.Client, allowPrivate: opts.AllowPrivate, templates: opts.Templates, now: opts.Now}
	if s.client == nil {
		s.client = delivery.NewClient(delivery.ClientOptions{AllowPrivate: opts.AllowPrivate})
	}
	if s.templates == nil {
		s.templates = new(delivery.Templates)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// CloseIdleConnections closes the webhook client's kept connections (a
// test's goleak check counts their goroutines).
func (s *Sender) CloseIdleConnections() { s.client.CloseIdleConnections() }

// Message is what to send, whatever the target's kind.
type Message struct {
	// ID is stable across retries of one message: the webhook-id, and the
	// base of an email's Message-ID. Empty: a new one per Send.
	ID string
	// Event is bound to event in the target's template (nil: null).
	Event *herald.Event
	// Vars are bound to steps and alert in the template.
	Vars delivery.Vars
	// Secrets (whsec_ form) sign a webhook; Slack requests are not
	// signed, since Slack would not check it.
	Secrets []string
	// Body is a webhook's body when the target has no json_template
	// (default: the event). Subject and Text are an email's when neither
	// the template nor the target gives them; Text is also a Slack
	// message's ({"text": Text}) when the target has no template.
	Body    json.RawMessage
	Subject string
	Text    string
}

// Result is what came of a Send, delivered or not.
type Result struct {
	// StatusCode and Response are the HTTP answer's status and the start
	// of its body (StatusCode 0: no answer, or an email); for an email,
	// Response is the server's answer to the message.
	StatusCode int
	Response   string
	Latency    time.Duration
	// Output is what a workflow run or an alert record stores:
	// {"status":200,"response":"…"} for a request,
	// {"messageId":"<…>","to":[…]} for an email.
	Output json.RawMessage
	// RetryAfter is the wait a 429 or 503 asked for (0: none named).
	RetryAfter time.Duration
}

// PermanentError is a failure that sending again will not mend: a 4xx
// answer other than 408 and 429, a 410, a template that fails, an
// invalid address, an SMTP 5xx reply. Callers do not retry it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent says whether err is, or wraps, a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// permanent wraps err as a PermanentError.
func permanent(err error) error { return &PermanentError{Err: err} }

// Send renders m for t and sends it. A nil error means delivered. A
// *PermanentError must not be retried; any other error may be, with the
// same m. The Result is nil only when nothing was sent.
func (s *Sender) Send(ctx context.Context, t herald.Target, m *Message) (*Result, error) {
	if m == nil {
		m = &Message{}
	}
	// SetDefaults writes through t.SMTP: work on a copy, not the caller's.
	if t.SMTP != nil {
		c := *t.SMTP
		t.SMTP = &c
	}
	t.SetDefaults()
	switch t.Kind {
	case herald.TargetWebhook:
		return s.sendHTTP(ctx, &t, m, true)
	case herald.TargetSlack:
		return s.sendHTTP(ctx, &t, m, false)
	case herald.TargetEmail:
		return s.sendEmail(ctx, &t, m)
	default:
		return nil, permanent(fmt.Errorf("target kind %q is not %q, %q or %q", t.Kind, herald.TargetWebhook, herald.TargetEmail, herald.TargetSlack))
	}
}

// render runs t's json_template, if it has one (nil output otherwise).
func (s *Sender) render(t *herald.Target, m *Message) (json.RawMessage, error) {
	if t.JSONTemplate == "" {
		return nil, nil
	}
	tmpl, err := s.templates.Compile(t.JSONTemplate)
	if err != nil {
		return nil, permanent(err)
	}
	out, err := tmpl.RenderWith(m.Event, m.Vars)
	if err != nil {
		return nil, permanent(err)
	}
	return out, nil
}

// sendHTTP posts to a webhook (signed, with the target's headers) or to
// Slack.
func (s *Sender) sendHTTP(ctx context.Context, t *herald.Target, m *Message, webhook bool) (*Result, error) {
	body, err := s.render(t, m)
	if err != nil {
		return nil, err
	}
	if body == nil {
		if body, err = defaultBody(m, webhook); err != nil {
			return nil, err
		}
	} else if !webhook && body[0] == '"' {
		// A Slack message is an object: a template that gives a string
		// gives its text.
		body, _ = json.Marshal(map[string]json.RawMessage{"text": body})
	}
	req := &delivery.Request{URL: t.URL, ID: messageID(m), Body: body, At: s.now(), Timeout: timeoutOf(ctx)}
	if webhook {
		req.Headers = t.Headers
		if len(m.Secrets) > 0 {
			if req.Signer, err = delivery.NewSigner(m.Secrets); err != nil {
				return nil, permanent(fmt.Errorf("sign: %w", err))
			}
		}
	}
	res := s.client.Send(ctx, req, s.now)
	r := &Result{StatusCode: res.StatusCode, Response: res.Response, Latency: res.Latency, RetryAfter: res.RetryAfter}
	r.Output = marshalOutput(struct {
		Status   int    `json:"status"`
		Response string `json:"response"`
	}{res.StatusCode, res.Response})
	switch res.Verdict() {
	case delivery.Delivered:
		return r, nil
	case delivery.Final, delivery.Gone:
		return r, permanent(res.Err)
	default:
		return r, res.Err
	}
}

// defaultBody is the body of a target without json_template: the
// message's Body (or the event) for a webhook, its Text for Slack.
func defaultBody(m *Message, webhook bool) (json.RawMessage, error) {
	if !webhook {
		b, err := json.Marshal(map[string]string{"text": m.Text})
		return b, err
	}
	switch {
	case len(m.Body) > 0:
		return m.Body, nil
	case m.Event != nil && len(m.Event.Body) > 0:
		return m.Event.Body, nil
	case m.Event != nil:
		b, err := herald.MarshalEvent(m.Event)
		if err != nil {
			return nil, permanent(fmt.Errorf("encode event %s: %w", m.Event.ID, err))
		}
		return b, nil
	}
	return json.RawMessage("{}"), nil
}

// marshalOutput encodes a Result's Output as people will read it: <
// and > as they are, not \u003c.
func marshalOutput(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// messageID is m's ID, or a new one for a message sent once.
func messageID(m *Message) string {
	if m.ID != "" {
		return m.ID
	}
	return herald.NewEventID()
}

// timeoutOf is the time left before ctx's deadline, rounded so that an
// error reads "no answer within 10s", or DefaultTimeout.
func timeoutOf(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return DefaultTimeout
	}
	d := time.Until(dl)
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return max(d.Round(time.Millisecond), time.Millisecond)
}
