package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// The headers of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// ParseSecret returns the HMAC key of a secret in whsec_ form: the base64
// after the prefix. A secret without the prefix is read as base64 too, as
// the Standard Webhooks libraries do.
func ParseSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, herald.SecretPrefix))
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("signing secret is not %s followed by base64", herald.SecretPrefix)
	}
	return key, nil
}

// Signer signs with one or more keys: while a rotated secret still signs,
// each request carries a signature by the new and by the old one, so a
// receiver that knows either accepts it.
type Signer struct {
	keys [][]byte
}

// NewSigner parses the secrets, in whsec_ form.
func NewSigner(secrets []string) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("no signing secret")
	}
	s := &Signer{keys: make([][]byte, len(secrets))}
	for i, secret := range secrets {
		key, err := ParseSecret(secret)
		if err != nil {
			return nil, err
		}
		s.keys[i] = key
	}
	return s, nil
}

// Sign returns the webhook-signature header value for a request with the
// given webhook-id, webhook-timestamp and body: "v1,<base64 HMAC-SHA256
// of id.timestamp.body>" per key, separated by spaces.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	msg := make([]byte, 0, len(id)+len(body)+22)
	msg = append(msg, id...)
	msg = append(msg, '.')
	msg = strconv.AppendInt(msg, ts.Unix(), 10)
	msg = append(msg, '.')
	msg = append(msg, body...)
	var b strings.Builder
	b.Grow(len(s.keys) * 48)
	for i, key := range s.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		mac := hmac.New(sha256.New, key)
		mac.Write(msg)
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return b.String()
}

// Sign returns the webhook-signature header value of a request signed
// with each of secrets (whsec_ form), in order.
func Sign(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	s, err := NewSigner(secrets)
	if err != nil {
		return "", err
	}
	return s.Sign(id, ts, body), nil
}

// Verify checks a request as a receiver would: one of the v1 signatures in
// signature must be by secret over id, ts and body, and ts must be within
// tolerance of now (0: not checked). It is Herald's own check, for tests
// and tools; partners use their Standard Webhooks library.
func Verify(secret, id, ts, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not unix seconds", ts)
	}
	at := time.Unix(sec, 0)
	if tolerance > 0 && (now.Sub(at) > tolerance || at.Sub(now) > tolerance) {
		return fmt.Errorf("webhook-timestamp %s is more than %s from now", ts, tolerance)
	}
	want := (&Signer{keys: [][]byte{key}}).Sign(id, at, body)
	for _, sig := range strings.Fields(signature) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no signature matches")
}
