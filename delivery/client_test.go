package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald"
)

func TestBlockedReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr, reason string
	}{
		{"127.0.0.1", "loopback"},
		{"127.8.9.10", "loopback"},
		{"::1", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"169.254.169.254", "metadata"},
		{"169.254.1.1", "link-local"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"fd12:3456::1", "private (unique local)"},
		{"fd00:ec2::254", "metadata"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:169.254.169.254", "metadata"},
		{"::ffff:10.0.0.1", "private"},
		{"64:ff9b::a9fe:a9fe", "metadata (embedded in IPv6)"},
		{"2002:7f00:1::", "loopback (6to4)"},
		{"255.255.255.255", "reserved"},
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"100.63.255.255", ""},
		{"172.32.0.1", ""},
		{"2606:4700:4700::1111", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""},
	} {
		if got := BlockedReason(netip.MustParseAddr(tc.addr)); got != tc.reason {
			t.Errorf("BlockedReason(%s) = %q, want %q", tc.addr, got, tc.reason)
		}
	}
}

func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func send(c *Client, url string, timeout time.Duration) *Result {
	signer, _ := NewSigner([]string{herald.NewSigningSecret()})
	return c.Send(context.Background(), &Request{
		URL: url, ID: "evt_1", Body: []byte(`{}`), Signer: signer, At: time.Now(), Timeout: timeout,
	}, time.Now)
}

// TestClientRefusesPrivateAtConnect: a name that resolves to a loopback
// address is refused when the connection is made, so what the name
// resolved to at any earlier check (DNS rebinding) does not matter.
func TestClientRefusesPrivateAtConnect(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	guarded := NewClient(ClientOptions{})
	for _, host := range []string{"localhost", "127.0.0.1", "[::ffff:127.0.0.1]"} {
		res := send(guarded, fmt.Sprintf("http://%s:%s/hook", host, port), 5*time.Second)
		var blocked *BlockedAddressError
		if !errors.As(res.Err, &blocked) || res.StatusCode != 0 {
			t.Errorf("%s: result %d %v, want a refused connection", host, res.StatusCode, res.Err)
			continue
		}
		if !strings.Contains(res.Err.Error(), "loopback") || res.Verdict() != Retry {
			t.Errorf("%s: error %q, verdict %d", host, res.Err, res.Verdict())
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the receiver got %d requests", n)
	}
	open := NewClient(ClientOptions{AllowPrivate: true})
	if res := send(open, fmt.Sprintf("http://localhost:%s/hook", port), 5*time.Second); res.StatusCode != 200 || res.Err != nil {
		t.Fatalf("with AllowPrivate: %d %v", res.StatusCode, res.Err)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target, targetHits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	})
	res := send(NewClient(ClientOptions{AllowPrivate: true}), srv.URL, 5*time.Second)
	if res.StatusCode != http.StatusFound || res.Err == nil || !strings.Contains(res.Err.Error(), "redirects are not followed") {
		t.Fatalf("result %d %v, want 302 recorded as a failure", res.StatusCode, res.Err)
	}
	if res.Verdict() != Retry {
		t.Errorf("verdict %d, want Retry", res.Verdict())
	}
	if targetHits.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestClientResponseExcerpt(t *testing.T) {
	t.Parallel()
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		// 1023 ASCII bytes, then a 3-byte rune across the 1 KiB limit,
		// a NUL, and a long tail to drain.
		fmt.Fprint(w, strings.Repeat("a", 1023)+"€\x00"+strings.Repeat("b", 200<<10))
	})
	res := send(NewClient(ClientOptions{AllowPrivate: true}), srv.URL, 5*time.Second)
	if res.StatusCode != 200 || res.Err != nil {
		t.Fatalf("%d %v", res.StatusCode, res.Err)
	}
	if len(res.Response) > herald.MaxResponseExcerpt || !utf8.ValidString(res.Response) || strings.ContainsRune(res.Response, 0) {
		t.Fatalf("excerpt of %d bytes, valid UTF-8 %v", len(res.Response), utf8.ValidString(res.Response))
	}
	if !strings.HasPrefix(res.Response, strings.Repeat("a", 1023)) {
		t.Errorf("excerpt %q…", res.Response[:20])
	}
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	start := time.Now()
	res := send(NewClient(ClientOptions{AllowPrivate: true}), srv.URL, 200*time.Millisecond)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "no answer within 200ms") || res.Verdict() != Retry {
		t.Fatalf("result %d %v", res.StatusCode, res.Err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestVerdicts(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]int{
		200: Delivered, 204: Delivered, 301: Retry, 400: Final, 401: Final, 404: Final,
		408: Retry, 409: Final, 410: Gone, 429: Retry, 500: Retry, 502: Retry, 503: Retry, 0: Retry,
	} {
		if got := (&Result{StatusCode: code}).Verdict(); got != want {
			t.Errorf("verdict of %d = %d, want %d", code, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"120", 120 * time.Second, true},
		{" 0 ", 0, true},
		{"Thu, 02 Jan 2025 03:06:05 GMT", 2 * time.Minute, true},
		{"Thu, 02 Jan 2025 03:00:00 GMT", 0, true}, // in the past: now
		{"999999999", maxRetryAfter, true},
		{"", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
	} {
		got, ok := parseRetryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %s %v, want %s %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}
