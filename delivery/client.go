package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald"
)

// DrainLimit is how much of an answer's body the client reads, beyond the
// excerpt it keeps, so that the connection can serve the next request; a
// longer body closes the connection instead.
const DrainLimit = 64 << 10

// UserAgent is sent with every request.
const UserAgent = "Herald-Webhooks/1"

// ClientOptions configure a Client.
type ClientOptions struct {
	// AllowPrivate lets requests reach loopback, private, link-local and
	// metadata addresses: for tests and local use only.
	AllowPrivate bool
	// MaxIdleConnsPerHost is how many idle connections to one endpoint
	// are kept; default 256, the largest MaxInFlight.
	MaxIdleConnsPerHost int
}

// Client sends webhook requests: one POST per call, never following a
// redirect, each with its own timeout, refusing private addresses at
// connect time unless allowed.
type Client struct {
	hc *http.Client
}

// NewClient returns a Client with its own connection pool.
func NewClient(opts ClientOptions) *Client {
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = 256
	}
	dialer := Dialer(opts.AllowPrivate)
	tr := &http.Transport{
		// No proxy: a proxy would be the address dialed, and the guard
		// would check it instead of the target.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           4 * opts.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:    opts.MaxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &Client{hc: &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Dialer returns the dialer of every outgoing connection Herald makes to
// an address a client chose (webhooks, SMTP servers, export databases):
// unless allowPrivate, it refuses loopback, private, link-local and
// metadata addresses. The check is on the address being connected to,
// after name resolution: a name that resolves to a public address when
// checked and a private one when used (DNS rebinding) is caught all the
// same.
func Dialer(allowPrivate bool) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = guardAddress
	}
	return d
}

// CloseIdleConnections closes the connections kept for reuse.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Request is one webhook request.
type Request struct {
	URL string
	// Headers are the subscription's own headers; the signature headers
	// and Content-Type are set after them and win.
	Headers map[string]string
	// ID is the webhook-id: the event id, the same on every attempt.
	ID   string
	Body []byte
	// Signer signs the request, At is its webhook-timestamp.
	Signer  *Signer
	At      time.Time
	Timeout time.Duration
}

// Result is what came of a request.
type Result struct {
	// StatusCode is 0 when no answer came.
	StatusCode int
	// Latency is from sending the request to reading the answer's head.
	Latency time.Duration
	// Response is the start of the answer's body, at most
	// herald.MaxResponseExcerpt bytes of valid UTF-8.
	Response string
	// RetryAfter is the wait a 429 or 503 asked for, if it named one.
	RetryAfter    time.Duration
	HasRetryAfter bool
	// Err is set when no answer came (timeout, refused, connection
	// error), and for answers that are not a success: its text is what
	// the attempt records.
	Err error
}

// Verdicts on a Result.
const (
	Delivered = iota // a 2xx
	Retry            // timeout, connection error, 3xx, 408, 429, 5xx
	Final            // another 4xx: this message is dead
	Gone             // 410: the subscription is disabled
)

// Verdict says what the result means for the message and subscription.
func (r *Result) Verdict() int {
	switch c := r.StatusCode; {
	case c >= 200 && c < 300:
		return Delivered
	case c == http.StatusGone:
		return Gone
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return Retry
	case c >= 400 && c < 500:
		return Final
	default:
		return Retry
	}
}

// Send makes the request and reads the start of the answer. now is the
// clock for an HTTP-date Retry-After.
func (c *Client) Send(ctx context.Context, req *Request, now func() time.Time) *Result {
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return &Result{Err: fmt.Errorf("bad URL: %w", err)}
	}
	for k, v := range req.Headers {
		hr.Header.Set(k, v)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", UserAgent)
	hr.Header.Set(HeaderID, req.ID)
	hr.Header.Set(HeaderTimestamp, strconv.FormatInt(req.At.Unix(), 10))
	if req.Signer != nil {
		hr.Header.Set(HeaderSignature, req.Signer.Sign(req.ID, req.At, req.Body))
	}
	start := time.Now()
	resp, err := c.hc.Do(hr)
	res := &Result{Latency: time.Since(start)}
	if err != nil {
		res.Err = describe(ctx, err, req.Timeout)
		return res
	}
	defer resp.Body.Close()
	res.StatusCode = resp.StatusCode
	excerpt, readErr := io.ReadAll(io.LimitReader(resp.Body, herald.MaxResponseExcerpt))
	res.Response = cleanExcerpt(excerpt)
	if readErr == nil && len(excerpt) == herald.MaxResponseExcerpt {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, DrainLimit))
	}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
	case c >= 300 && c < 400:
		res.Err = fmt.Errorf("answered %s to %q: redirects are not followed", resp.Status, resp.Header.Get("Location"))
	default:
		res.Err = fmt.Errorf("answered %s", resp.Status)
		if c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable {
			res.RetryAfter, res.HasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now())
		}
	}
	return res
}

// describe words a failed request for the attempt log.
func describe(ctx context.Context, err error, timeout time.Duration) error {
	var blocked *BlockedAddressError
	switch {
	case errors.As(err, &blocked):
		return blocked
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}

// maxRetryAfter caps the wait an endpoint may ask for: the longest wait a
// schedule may have.
const maxRetryAfter = 7 * 24 * time.Hour

// cleanExcerpt makes the excerpt storable as text: valid UTF-8 without NUL,
// at most herald.MaxResponseExcerpt bytes.
func cleanExcerpt(b []byte) string {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == 0 || r == utf8.RuneError && size <= 1 {
			r = utf8.RuneError
		}
		if sb.Len()+utf8.RuneLen(r) > herald.MaxResponseExcerpt {
			break
		}
		sb.WriteRune(r)
		b = b[size:]
	}
	return sb.String()
}

// BlockedAddressError is a refused connection to an address that is not
// public.
type BlockedAddressError struct {
	Addr   netip.Addr
	Reason string
}

func (e *BlockedAddressError) Error() string {
	return fmt.Sprintf("refused to connect to %s: %s address (herald serve --allow-private-targets permits it)", e.Addr, e.Reason)
}

// guardAddress is the dialer's Control: it runs once the address to
// connect to is known, before connecting.
func guardAddress(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to connect to %q: not an IP address", address)
	}
	if reason := BlockedReason(ap.Addr()); reason != "" {
		return &BlockedAddressError{Addr: ap.Addr(), Reason: reason}
	}
	return nil
}

var blockedPrefixes = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.169.254/32"), "metadata"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "metadata"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("100::/64"), "discard"},
}

// Prefixes whose IPv6 addresses carry an IPv4 address in their low 32
// bits, which is what they reach: IPv4-compatible and NAT64.
var embedsIPv4Low = []netip.Prefix{
	netip.MustParsePrefix("::/96"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

var sixToFour = netip.MustParsePrefix("2002::/16")

// BlockedReason says why a connection to a is refused without
// AllowPrivate: "loopback", "private", "metadata"…; empty when a is
// public.
func BlockedReason(a netip.Addr) string {
	a = a.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if a.Zone() != "" {
		a = a.WithZone("")
	}
	for _, b := range blockedPrefixes {
		if b.prefix.Contains(a) {
			return b.reason
		}
	}
	if a.Is6() {
		b := a.As16()
		for _, p := range embedsIPv4Low {
			if p.Contains(a) {
				if r := BlockedReason(netip.AddrFrom4([4]byte(b[12:16]))); r != "" {
					return r + " (embedded in IPv6)"
				}
			}
		}
		if sixToFour.Contains(a) {
			if r := BlockedReason(netip.AddrFrom4([4]byte(b[2:6]))); r != "" {
				return r + " (6to4)"
			}
		}
	}
	return ""
}
