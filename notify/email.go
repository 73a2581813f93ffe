package notify

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
)

// emailContent is what a template may give an email.
type emailContent struct {
	Subject *string `json:"subject"`
	Text    *string `json:"text"`
	HTML    *string `json:"html"`
}

// content works out an email's subject, text and HTML: the template's
// output first (a string is the text; an object may have subject, text
// and html), then the target's subject and text, then the message's.
func (s *Sender) content(t *herald.Target, m *Message) (subject, text, html string, err error) {
	var c emailContent
	out, err := s.render(t, m)
	if err != nil {
		return "", "", "", err
	}
	if len(out) > 0 {
		switch out[0] {
		case '"':
			c.Text = new(string)
			err = json.Unmarshal(out, c.Text)
		case '{':
			err = json.Unmarshal(out, &c)
		case 'n': // null: the defaults
		default:
			err = errors.New("not a string or an object")
		}
		if err != nil {
			return "", "", "", permanent(fmt.Errorf("json_template: an email's template must give a string (the text) or an object with subject, text and html strings: %v", err))
		}
	}
	subject = first(c.Subject, t.Subject, m.Subject)
	text = first(c.Text, t.Text, m.Text)
	if c.HTML != nil {
		html = *c.HTML
	}
	// A header is one line: a line break would start a header of the
	// template's choosing.
	subject = strings.Join(strings.Fields(subject), " ")
	return subject, text, html, nil
}

// first is *v if set and not empty, else the first non-empty default.
func first(v *string, defaults ...string) string {
	if v != nil && *v != "" {
		return *v
	}
	for _, d := range defaults {
		if d != "" {
			return d
		}
	}
	return ""
}

// sendEmail sends one mail through the target's SMTP server.
func (s *Sender) sendEmail(ctx context.Context, t *herald.Target, m *Message) (*Result, error) {
	c := t.SMTP
	if c == nil {
		return nil, permanent(errors.New("email target without smtp settings"))
	}
	subject, text, html, err := s.content(t, m)
	if err != nil {
		return nil, err
	}
	msg := mail.NewMsg()
	if err := msg.From(t.From); err != nil {
		return nil, permanent(fmt.Errorf("from %q: %w", t.From, err))
	}
	if len(t.To) == 0 {
		return nil, permanent(errors.New("email target without recipients"))
	}
	if err := msg.To(t.To...); err != nil {
		return nil, permanent(fmt.Errorf("to: %w", err))
	}
	msg.Subject(subject)
	msgID := mailMessageID(messageID(m), t.From)
	msg.SetMessageIDWithValue(msgID)
	msg.SetDateWithValue(s.now())
	msg.SetUserAgent("Herald")
	switch {
	case html != "" && text != "":
		msg.SetBodyString(mail.TypeTextPlain, text)
		msg.AddAlternativeString(mail.TypeTextHTML, html)
	case html != "":
		msg.SetBodyString(mail.TypeTextHTML, html)
	default:
		msg.SetBodyString(mail.TypeTextPlain, text)
	}

	timeout := timeoutOf(ctx)
	tlsConfig := &tls.Config{ServerName: c.Host, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // the target's choice, for private relays
	d := &dialer{ctx: ctx, guard: delivery.Dialer(s.allowPrivate)}
	if c.TLS == herald.SMTPTLS {
		d.tls = tlsConfig
	}
	defer d.close()
	opts := []mail.Option{
		mail.WithPort(c.Port),
		mail.WithTimeout(timeout),
		mail.WithTLSConfig(tlsConfig),
		mail.WithDialContextFunc(d.dial),
	}
	switch c.TLS {
	case herald.SMTPStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	default:
		// TLS from the start is the dialer's: go-mail does not wrap a
		// connection from a custom dial function (WithSSL would then
		// send in the clear), and with NoTLS it does not try STARTTLS
		// inside it either.
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if c.Username != "" {
		// PLAIN or LOGIN by what the server offers, else what go-mail
		// finds; go-mail sends PLAIN and LOGIN only over TLS (the
		// connection's, whether by STARTTLS or from the start).
		opts = append(opts, mail.WithUsername(c.Username), mail.WithPassword(c.Password),
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthPlain, mail.SMTPAuthLogin))
	}
	client, err := mail.NewClient(c.Host, opts...)
	if err != nil {
		return nil, permanent(smtpError(ctx, c, timeout, err))
	}
	start := time.Now()
	err = client.DialAndSendWithContext(ctx, msg)
	r := &Result{Latency: time.Since(start), Response: msg.ServerResponse()}
	r.Output = marshalOutput(struct {
		MessageID string   `json:"messageId"`
		To        []string `json:"to"`
	}{"<" + msgID + ">", t.To})
	if err != nil && msg.IsDelivered() {
		// The server took the mail; only the goodbye failed.
		err = nil
	}
	if err != nil {
		e := smtpError(ctx, c, timeout, err)
		if permanentSMTP(err) {
			e = permanent(e)
		}
		return r, e
	}
	return r, nil
}

// dialer connects through the guard, wraps the connection in TLS for the
// tls mode, and closes it when the send's context ends (go-mail watches
// the context only while dialing) or the send is over (go-mail leaves it
// open when AUTH fails).
type dialer struct {
	ctx   context.Context
	guard *net.Dialer
	tls   *tls.Config

	mu    sync.Mutex
	conns []net.Conn
	stops []func() bool
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := d.guard.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if d.tls != nil {
		tc := tls.Client(conn, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		// go-mail sees a *tls.Conn and knows the connection is
		// encrypted.
		conn = tc
	}
	d.mu.Lock()
	d.conns = append(d.conns, conn)
	d.stops = append(d.stops, context.AfterFunc(d.ctx, func() { conn.Close() }))
	d.mu.Unlock()
	return conn, nil
}

func (d *dialer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, c := range d.conns {
		d.stops[i]()
		c.Close()
	}
}

// permanentSMTP says whether err is an SMTP 5xx reply or an address the
// server cannot take: sending again would get the same.
func permanentSMTP(err error) bool {
	var se *mail.SendError
	if errors.As(err, &se) {
		if se.Reason == mail.ErrGetSender || se.Reason == mail.ErrGetRcpts {
			return true
		}
		if code := se.ErrorCode(); code != 0 {
			return code >= 500
		}
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code >= 500 && te.Code < 600
	}
	return false
}

// smtpError words a failed send for a run's or record's log: which
// server, and why, without the password.
func smtpError(ctx context.Context, c *herald.SMTPConfig, timeout time.Duration, err error) error {
	server := fmt.Sprintf("%s:%d", c.Host, c.Port)
	var blocked *delivery.BlockedAddressError
	switch {
	case errors.As(err, &blocked):
		return fmt.Errorf("send email via %s: %w", server, blocked)
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("send email via %s: %w", server, ctx.Err())
	case ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("send email via %s: no answer within %s", server, timeout)
	}
	msg := err.Error()
	if c.Password != "" {
		// go-mail's messages do not hold the password; this keeps it so
		// should one ever quote what was sent.
		msg = strings.ReplaceAll(msg, c.Password, herald.Redacted)
		plain := base64.StdEncoding.EncodeToString([]byte("\x00" + c.Username + "\x00" + c.Password))
		msg = strings.ReplaceAll(msg, plain, herald.Redacted)
	}
	return fmt.Errorf("send email via %s: %s", server, msg)
}

// mailMessageID makes a Message-ID (without its angle brackets) from id,
// in the sender's domain: the same for every retry of one message.
func mailMessageID(id, from string) string {
	domain := "herald.invalid"
	if a, err := netmail.ParseAddress(from); err == nil {
		if at := strings.LastIndexByte(a.Address, '@'); at > 0 && dotAtom(a.Address[at+1:]) {
			domain = a.Address[at+1:]
		}
	}
	var b strings.Builder
	for _, r := range id {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	left := strings.Trim(b.String(), ".")
	for strings.Contains(left, "..") {
		left = strings.ReplaceAll(left, "..", ".")
	}
	if left == "" {
		left = herald.NewEventID()
	}
	return left + "@" + domain
}

// dotAtom says whether s may stand after the @ of a Message-ID.
func dotAtom(s string) bool {
	if s == "" || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
