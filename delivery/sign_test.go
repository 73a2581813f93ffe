package delivery

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald"
)

func headersOf(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h
}

// TestSignMatchesStandardWebhooks checks Herald's signatures with the
// Standard Webhooks reference library, not with Herald's own code.
func TestSignMatchesStandardWebhooks(t *testing.T) {
	t.Parallel()
	secret := herald.NewSigningSecret()
	id, ts := "evt_01J9Z3", time.Now()
	body := []byte(`{"id":"evt_01J9Z3","seq":7,"data":{"amount":12.50,"z":1,"a":2}}`)

	got, err := Sign([]string{secret}, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	want, err := wh.Sign(id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("signature %q, the library signs %q", got, want)
	}
	if err := wh.Verify(body, headersOf(id, ts, got)); err != nil {
		t.Fatalf("library rejects Herald's signature: %v", err)
	}
	// A changed body, id or timestamp fails.
	if wh.Verify(append(body[:len(body):len(body)], ' '), headersOf(id, ts, got)) == nil {
		t.Error("a changed body verified")
	}
	if wh.Verify(body, headersOf("evt_other", ts, got)) == nil {
		t.Error("a changed id verified")
	}
	if wh.Verify(body, headersOf(id, ts.Add(time.Second), got)) == nil {
		t.Error("a changed timestamp verified")
	}
}

// TestSignRotatedPair: while a rotated secret still signs, the header has
// two signatures and a receiver with either secret accepts the request.
func TestSignRotatedPair(t *testing.T) {
	t.Parallel()
	current, old := herald.NewSigningSecret(), herald.NewSigningSecret()
	id, ts, body := "evt_1", time.Now(), []byte(`{"a":1}`)
	sig, err := Sign([]string{current, old}, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(sig)); n != 2 {
		t.Fatalf("signature header %q has %d signatures, want 2", sig, n)
	}
	for name, secret := range map[string]string{"current": current, "rotated": old} {
		wh, _ := standardwebhooks.NewWebhook(secret)
		if err := wh.Verify(body, headersOf(id, ts, sig)); err != nil {
			t.Errorf("%s secret: %v", name, err)
		}
		if err := Verify(secret, id, strconv.FormatInt(ts.Unix(), 10), sig, body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("%s secret, Herald's Verify: %v", name, err)
		}
	}
	wh, _ := standardwebhooks.NewWebhook(herald.NewSigningSecret())
	if wh.Verify(body, headersOf(id, ts, sig)) == nil {
		t.Error("an unrelated secret verified")
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "whsec_", "whsec_not base64!", "whsec_%%%%"} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) succeeded", bad)
		}
	}
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil || len(key) != 24 {
		t.Fatalf("ParseSecret = %d bytes, %v", len(key), err)
	}
	if _, err := Sign(nil, "id", time.Now(), nil); err == nil {
		t.Error("Sign without secrets succeeded")
	}
}

func FuzzSignVerify(f *testing.F) {
	f.Add("evt_1", int64(1700000000), []byte(`{"a":1}`))
	f.Add("", int64(0), []byte{})
	f.Add("id.with.dots", int64(-5), []byte("\x00\xff"))
	secret := herald.NewSigningSecret()
	wh, _ := standardwebhooks.NewWebhook(secret)
	f.Fuzz(func(t *testing.T, id string, sec int64, body []byte) {
		ts := time.Unix(sec, 0)
		sig, err := Sign([]string{secret}, id, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := wh.Sign(id, ts, body)
		if sig != want {
			t.Fatalf("Sign = %q, library %q", sig, want)
		}
		if err := Verify(secret, id, strconv.FormatInt(sec, 10), sig, body, ts, 0); err != nil {
			t.Fatal(err)
		}
	})
}
