package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
)

// webhookTimeout bounds one request, unless the context is shorter.
const webhookTimeout = 30 * time.Second

// webhookWriter sends each unit as one signed POST.
type webhookWriter struct {
	client *delivery.Client
	// own is set when the writer made its client and must close it.
	own     bool
	url     string
	headers map[string]string
	tmpl    *delivery.Template
	signer  *delivery.Signer
	now     func() time.Time
}

func openWebhook(w *herald.Work, opts Options) (*webhookWriter, error) {
	d := &w.Export.Destination
	if d.URL == "" {
		return nil, &PermanentError{Err: fmt.Errorf("export %s: webhook without a url", w.ID)}
	}
	signer, err := delivery.NewSigner([]string{w.Secret})
	if err != nil {
		return nil, &PermanentError{Err: fmt.Errorf("export %s: %w", w.ID, err)}
	}
	wr := &webhookWriter{client: opts.Client, url: d.URL, headers: d.Headers, signer: signer, now: opts.Now}
	if d.JSONTemplate != "" {
		if opts.Templates != nil {
			wr.tmpl, err = opts.Templates.Compile(d.JSONTemplate)
		} else {
			wr.tmpl, err = delivery.Compile(d.JSONTemplate)
		}
		if err != nil {
			return nil, &PermanentError{Err: fmt.Errorf("export %s: %w", w.ID, err)}
		}
	}
	if wr.client == nil {
		wr.client, wr.own = delivery.NewClient(delivery.ClientOptions{AllowPrivate: opts.AllowPrivate}), true
	}
	return wr, nil
}

func (wr *webhookWriter) Close() error {
	if wr.own {
		wr.client.CloseIdleConnections()
	}
	return nil
}

// Write posts the unit: {"work":id,"events":[stored bodies]}, or with a
// json_template each event rendered, a unit of one sent as the rendered
// body alone (so that a template made for one event per request, such as
// a Slack message, works as it is) and a larger one as an array. The
// webhook-id is the unit's name, the same on every attempt, so that the
// receiver can drop a repeat.
func (wr *webhookWriter) Write(ctx context.Context, u *Unit) (json.RawMessage, error) {
	if err := checkUnit(u); err != nil {
		return nil, err
	}
	body, err := wr.body(u)
	if err != nil {
		return nil, err
	}
	res := wr.client.Send(ctx, &delivery.Request{
		URL:     wr.url,
		Headers: wr.headers,
		ID:      unitName(u, false),
		Body:    body,
		Signer:  wr.signer,
		At:      wr.now(),
		Timeout: webhookTimeout,
	}, wr.now)
	switch res.Verdict() {
	case delivery.Delivered:
		return detail(map[string]any{"status": res.StatusCode}), nil
	case delivery.Final, delivery.Gone:
		return nil, &PermanentError{Err: wr.failure(u, res)}
	}
	var blocked *delivery.BlockedAddressError
	if errors.As(res.Err, &blocked) {
		return nil, &PermanentError{Err: wr.failure(u, res)}
	}
	return nil, wr.failure(u, res)
}

// failure words a request that did not succeed, with the start of the
// answer, which often says why.
func (wr *webhookWriter) failure(u *Unit, res *delivery.Result) error {
	msg := "failed"
	if res.Err != nil {
		msg = res.Err.Error()
	} else if res.StatusCode != 0 {
		msg = "answered " + strconv.Itoa(res.StatusCode)
	}
	if r := excerpt(res.Response, 200); r != "" {
		msg += ": " + r
	}
	return fmt.Errorf("export %s: webhook %s", u.Work.ID, msg)
}

func excerpt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func (wr *webhookWriter) body(u *Unit) ([]byte, error) {
	var buf bytes.Buffer
	if wr.tmpl == nil {
		id, _ := json.Marshal(u.Work.ID)
		buf.WriteString(`{"work":`)
		buf.Write(id)
		buf.WriteString(`,"events":[`)
		for i, e := range u.Events {
			b, err := bodyOf(e)
			if err != nil {
				return nil, fmt.Errorf("export %s: %w", u.Work.ID, err)
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(b)
		}
		buf.WriteString(`]}`)
		return buf.Bytes(), nil
	}
	if len(u.Events) > 1 {
		buf.WriteByte('[')
	}
	for i, e := range u.Events {
		b, err := wr.tmpl.Render(e)
		if err != nil {
			// The same event renders the same way each time.
			return nil, &PermanentError{Err: fmt.Errorf("export %s: event %s: %w", u.Work.ID, e.ID, err)}
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	if len(u.Events) > 1 {
		buf.WriteByte(']')
	}
	return buf.Bytes(), nil
}
