package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// Defaults of a Client.
const (
	// DefaultRetries is how many times a failed request is tried again:
	// five attempts in all.
	DefaultRetries = 4
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait before a
	// retry: it doubles from the first to the second with each attempt,
	// and a random part of it (full jitter) is waited.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	// maxRetryAfter caps what a server's Retry-After may make a client
	// wait, so that a misconfigured proxy cannot park it for hours; the
	// context bounds it further.
	maxRetryAfter = 2 * time.Minute
	// maxErrorBody bounds how much of an error answer is read.
	maxErrorBody = 1 << 20
)

// Client calls one Herald server with one API key. It is safe for
// concurrent use.
type Client struct {
	base       *url.URL
	baseErr    error // why base is nil
	key        string
	http       *http.Client
	userAgent  string
	retries    int
	minBackoff time.Duration
	maxBackoff time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc. Leave its
// Timeout zero if you use Stream: a timeout would end every stream; bound
// each call with its context instead.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithRetries sets how many times a failed request is tried again (0: never).
func WithRetries(n int) Option {
	return func(c *Client) { c.retries = max(n, 0) }
}

// WithBackoff sets the bounds of the wait between attempts (see
// DefaultMinBackoff).
func WithBackoff(minWait, maxWait time.Duration) Option {
	return func(c *Client) { c.minBackoff, c.maxBackoff = minWait, max(maxWait, minWait) }
}

// New returns a Client of the server at baseURL (such as
// http://127.0.0.1:8080) that authenticates with key. A baseURL that does
// not parse makes every call fail with the parse error.
func New(baseURL, key string, opts ...Option) *Client {
	c := &Client{
		key:        key,
		userAgent:  "herald-go-client",
		retries:    DefaultRetries,
		minBackoff: DefaultMinBackoff,
		maxBackoff: DefaultMaxBackoff,
	}
	if u, err := url.Parse(strings.TrimRight(baseURL, "/")); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		c.base = u
	}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		// A transport of its own, so that CloseIdleConnections closes
		// this client's connections and no one else's.
		c.http = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if c.base == nil {
		// Reported by the first call, which has an error to return,
		// rather than by New, which has not.
		c.baseErr = fmt.Errorf("client: base URL %q is not an absolute http(s) URL such as http://127.0.0.1:8080", baseURL)
	}
	return c
}

// CloseIdleConnections closes the connections the client keeps open for
// later requests.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Error is an answer that is not a 2xx: the RFC 9457 problem details the
// server sent. For an answer that is not a problem (a proxy's error page,
// say), Title is the status text and Detail the start of the body.
type Error struct {
	Status   int
	Type     string
	Title    string
	Detail   string
	Instance string
	// Errors names the fields at fault: a JSON Pointer into the body sent
	// (/events/3/type in a batch), or ?name for a query parameter.
	Errors []herald.FieldError
	// RequestID is the X-Request-Id of the answer, which the server's log
	// line of the request carries too.
	RequestID string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "herald: %d", e.Status)
	if e.Title != "" {
		b.WriteString(" " + e.Title)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if len(e.Errors) > 0 && !strings.HasPrefix(e.Detail, e.Errors[0].Pointer+": ") {
		fmt.Fprintf(&b, " (%s: %s)", e.Errors[0].Pointer, e.Errors[0].Detail)
	}
	return b.String()
}

// problem is the JSON of a problem details object.
type problem struct {
	Type     string              `json:"type"`
	Title    string              `json:"title"`
	Status   int                 `json:"status"`
	Detail   string              `json:"detail"`
	Instance string              `json:"instance"`
	Errors   []herald.FieldError `json:"errors"`
}

func (p *problem) toError(status int) *Error {
	if p.Status != 0 {
		status = p.Status
	}
	return &Error{Status: status, Type: p.Type, Title: p.Title, Detail: p.Detail, Instance: p.Instance, Errors: p.Errors}
}

// errorOf reads the *Error of an answer that is not a 2xx.
func errorOf(resp *http.Response) *Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var p problem
	if (mt == "application/problem+json" || mt == "application/json") && json.Unmarshal(body, &p) == nil && (p.Type != "" || p.Detail != "") {
		e = p.toError(resp.StatusCode)
	} else if text := strings.TrimSpace(string(body)); text != "" {
		e.Detail = truncate(text, 500)
	}
	e.RequestID = resp.Header.Get("X-Request-Id")
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// retryPolicy says when a request may be tried again.
type retryPolicy int

const (
	// retrySafe: the request may be repeated whatever became of it (a
	// read, a PUT, an event with its id).
	retrySafe retryPolicy = iota
	// retryUnsent: the request creates something the server cannot
	// recognise when it comes again; it is repeated only when the server
	// cannot have acted on it.
	retryUnsent
)

// request is one call to the API.
type request struct {
	method string
	path   string // escaped, from the root: /v1/…
	query  url.Values
	header http.Header
	body   []byte // nil: none
	ctype  string
	policy retryPolicy
}

// send performs req with retries and returns the answer of the last
// attempt when it is a 2xx, its body still to read and close by the
// caller; any other answer is an *Error.
func (c *Client) send(ctx context.Context, req *request) (*http.Response, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + req.path
	u.RawPath = ""
	if p, err := url.PathUnescape(u.Path); err == nil {
		// req.path is escaped (ids may hold characters that need it):
		// keep the escaped form for the wire.
		u.RawPath, u.Path = u.Path, p
	}
	if len(req.query) > 0 {
		u.RawQuery = req.query.Encode()
	}
	target := u.String()

	var lastErr error
	for attempt := 0; ; attempt++ {
		hr, err := http.NewRequestWithContext(ctx, req.method, target, bodyReader(req.body))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
		}
		for k, v := range req.header {
			hr.Header[k] = v
		}
		hr.Header.Set("Authorization", "Bearer "+c.key)
		hr.Header.Set("User-Agent", c.userAgent)
		if hr.Header.Get("Accept") == "" {
			hr.Header.Set("Accept", "application/json")
		}
		if req.body != nil {
			hr.Header.Set("Content-Type", req.ctype)
		}

		resp, err := c.http.Do(hr)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s %s: %w", req.method, req.path, ctx.Err())
			}
			lastErr = fmt.Errorf("%s %s: %w", req.method, req.path, err)
			if req.policy == retryUnsent && !notSent(err) {
				return nil, lastErr
			}
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return resp, nil
		default:
			apiErr := errorOf(resp)
			resp.Body.Close()
			if !retryable(resp.StatusCode, req.policy) {
				return nil, apiErr
			}
			lastErr = apiErr
			wait = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		if attempt >= c.retries {
			if _, ok := lastErr.(*Error); ok {
				return nil, lastErr
			}
			return nil, fmt.Errorf("after %d attempts: %w", attempt+1, lastErr)
		}
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%s %s: %w (last attempt: %v)", req.method, req.path, err, lastErr)
		}
	}
}

func bodyReader(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

// retryable reports whether an answer with status may be tried again.
func retryable(status int, policy retryPolicy) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		return true // the server did not act on the request
	case status >= 500:
		return policy == retrySafe
	}
	return false
}

// notSent reports whether err shows that the request never reached the
// server: the connection could not be made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// backoff is the wait before attempt+1: exponential with full jitter, so
// that many clients failed by one outage do not come back in step.
func (c *Client) backoff(attempt int) time.Duration {
	ceiling := c.minBackoff << min(attempt, 30)
	if ceiling <= 0 || ceiling > c.maxBackoff {
		ceiling = c.maxBackoff
	}
	if ceiling <= 0 {
		return 0
	}
	// At least half of it, so that a retry does not come at once.
	return ceiling/2 + rand.N(ceiling/2+1)
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date. Zero
// when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// encodeJSON encodes v compactly without HTML escaping, so that what a
// caller put in data or a template is sent as it is.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// call sends req with body v (nil: none) and decodes a 2xx answer into
// out (nil: discarded).
func (c *Client) call(ctx context.Context, req *request, in, out any) error {
	if raw, ok := in.(json.RawMessage); ok && raw == nil {
		in = nil // a body left out, not the JSON null
	}
	if in != nil {
		b, err := encodeJSON(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode the body: %w", req.method, req.path, err)
		}
		req.body, req.ctype = b, "application/json"
	}
	resp, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	defer func() {
		// Read to the end (the newline after the JSON), so that the
		// connection goes back to the pool rather than being closed.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
	}()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", req.method, req.path, err)
	}
	return nil
}

// Do calls any route of the API: method and path (escaped, such as
// /v1/lifecycles/lg-1), with in encoded as the JSON body (nil, or a nil
// json.RawMessage: none; a json.RawMessage is sent as it is, compacted), and
// decodes a 2xx answer into out (nil: discarded). It retries as the typed
// calls do for a GET, PUT or DELETE; a POST is retried only when the
// server cannot have acted on it.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	policy := retrySafe
	if method == http.MethodPost || method == http.MethodPatch {
		policy = retryUnsent
	}
	return c.call(ctx, &request{method: method, path: path, query: query, policy: policy}, in, out)
}

// pathOf joins escaped path segments under /v1.
func pathOf(segments ...string) string {
	var b strings.Builder
	b.WriteString("/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
