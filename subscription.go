package herald

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// States of a subscription.
const (
	// SubscriptionActive delivers.
	SubscriptionActive = "active"
	// SubscriptionPaused keeps its place in the log and delivers nothing
	// until resumed; events stored meanwhile are delivered then.
	SubscriptionPaused = "paused"
	// SubscriptionDisabled stopped because its endpoint answered 410 or
	// failed for longer than DisableAfter; resuming it goes on from where
	// it stopped.
	SubscriptionDisabled = "disabled"
)

// ValidSubscriptionState reports whether state is one of the states.
func ValidSubscriptionState(state string) bool {
	switch state {
	case SubscriptionActive, SubscriptionPaused, SubscriptionDisabled:
		return true
	}
	return false
}

// Defaults of a subscription.
const (
	DefaultDeliveryTimeout = 15 * time.Second
	DefaultMaxInFlight     = 16
	DefaultDisableAfter    = 5 * 24 * time.Hour
	// DefaultSecretOverlap is how long a rotated secret keeps signing
	// beside the new one.
	DefaultSecretOverlap = 24 * time.Hour
)

// DefaultRetrySchedule is when a failed message is tried again, after the
// first attempt: about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. Each
// wait gets up to 20 % of jitter. After the last, the message is dead.
func DefaultRetrySchedule() []Duration {
	return []Duration{
		Duration(5 * time.Second), Duration(5 * time.Minute), Duration(30 * time.Minute),
		Duration(2 * time.Hour), Duration(5 * time.Hour), Duration(10 * time.Hour), Duration(10 * time.Hour),
	}
}

// Subscription sends the events that match its filter, stored after it
// was made, to a URL: one signed POST per event (DESIGN.md §5).
type Subscription struct {
	ID        string `json:"id"`
	AccountID string `json:"-"`
	Name      string `json:"name,omitempty"`
	URL       string `json:"url"`
	Filter    Filter `json:"filter"`
	// Headers are added to every request; they cannot replace the
	// signature headers or Content-Type.
	Headers map[string]string `json:"headers,omitempty"`
	// JSONTemplate, when set, is a Jsonnet program that shapes the body
	// from the event (bound to the variable event). Without one the body
	// is the stored event.
	JSONTemplate string `json:"json_template,omitempty"`
	// RateLimit caps requests per second; 0 means no cap.
	RateLimit float64 `json:"rateLimit,omitempty"`
	// Ordered delivers the events of one lifecycle (else of one entity)
	// one after the other, in seq order: a later one waits while an
	// earlier one is retried.
	Ordered bool `json:"ordered"`
	// MaxInFlight bounds the requests under way at once.
	MaxInFlight   int        `json:"maxInFlight"`
	RetrySchedule []Duration `json:"retrySchedule"`
	Timeout       Duration   `json:"timeout"`
	// DisableAfter disables a subscription that has failed without a
	// success for that long.
	DisableAfter Duration `json:"disableAfter"`

	State string `json:"state"`
	// StateReason says why it is paused or disabled.
	StateReason string `json:"stateReason,omitempty"`
	// FailingSince is the first failure since the last success.
	FailingSince *time.Time `json:"failingSince,omitempty"`
	// Cursor is the seq up to which every matching event was delivered,
	// given up on (dead), or queued for a retry.
	Cursor    int64     `json:"cursor"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// AuditView is what system events record of a subscription: header
// values may be a partner's credentials, so they are masked.
func (s *Subscription) AuditView() any {
	if s == nil || len(s.Headers) == 0 {
		return s
	}
	c := *s
	c.Headers = make(map[string]string, len(s.Headers))
	for k := range s.Headers {
		c.Headers[k] = "[redacted]"
	}
	return &c
}

// runtimeMembers are the members of a Subscription that its state holds,
// not its definition: stores keep them in columns of their own.
var runtimeMembers = []string{"id", "state", "stateReason", "failingSince", "cursor", "createdAt", "updatedAt"}

// Definition returns what a client set of s (URL, filter, headers,
// template, limits, schedule) as JSON, for a store to keep beside the
// state it keeps in columns; json.Unmarshal reads it back into a
// Subscription.
func (s *Subscription) Definition() ([]byte, error) { return definitionOf(s, runtimeMembers) }

// definitionOf encodes v, a thing a client defines, without the members
// named by runtime (kept by stores in columns of their own): compact,
// without HTML escaping, so that what a client wrote comes back as it
// wrote it.
func definitionOf(v any, runtime []string) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	members := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &members); err != nil {
		return nil, err
	}
	for _, k := range runtime {
		delete(members, k)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(members); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// PrepareCreate settles, as CreateSubscription stores it, what a new
// subscription starts from: its cursor (0: lastSeq, the account's newest
// event, so it gets what is stored from now on; negative: 0, replay
// everything; else as given) and its times, kept to the microsecond.
func (s *Subscription) PrepareCreate(lastSeq int64, now time.Time) {
	switch {
	case s.Cursor == 0:
		s.Cursor = lastSeq
	case s.Cursor < 0:
		s.Cursor = 0
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = now
	}
	s.CreatedAt = s.CreatedAt.UTC().Truncate(time.Microsecond)
	s.UpdatedAt = s.CreatedAt
	if s.FailingSince != nil {
		t := s.FailingSince.UTC().Truncate(time.Microsecond)
		s.FailingSince = &t
	}
}

// SetDefaults fills the fields left zero.
func (s *Subscription) SetDefaults() {
	if s.MaxInFlight == 0 {
		s.MaxInFlight = DefaultMaxInFlight
	}
	if s.RetrySchedule == nil {
		s.RetrySchedule = DefaultRetrySchedule()
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(DefaultDeliveryTimeout)
	}
	if s.DisableAfter == 0 {
		s.DisableAfter = Duration(DefaultDisableAfter)
	}
	if s.State == "" {
		s.State = SubscriptionActive
	}
}

// reservedHeaders are set by Herald on every delivery.
var reservedHeaders = map[string]bool{
	"webhook-id": true, "webhook-timestamp": true, "webhook-signature": true,
	"content-type": true, "content-length": true, "host": true, "user-agent": true,
}

// Validate checks what a client may set, naming the field at fault. The
// template is compiled by the delivery package, which knows Jsonnet.
func (s *Subscription) Validate() error {
	var errs []FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)})
	}
	if msg := checkHTTPURL(s.URL); msg != "" {
		fail("/url", "%s", msg)
	}
	if len(s.Name) > 200 {
		fail("/name", "must be at most 200 characters")
	}
	if err := s.Filter.Validate("/filter"); err != nil {
		errs = append(errs, err.(*Error).Fields...)
	}
	errs = append(errs, checkHeaders("", s.Headers)...)
	if s.RateLimit < 0 || s.RateLimit > 100000 {
		fail("/rateLimit", "must be between 0 (no limit) and 100000 requests per second")
	}
	if s.MaxInFlight < 1 || s.MaxInFlight > 256 {
		fail("/maxInFlight", "must be between 1 and 256")
	}
	errs = append(errs, checkRetrySchedule("/retrySchedule", s.RetrySchedule)...)
	if s.Timeout < Duration(time.Second) || s.Timeout > Duration(2*time.Minute) {
		fail("/timeout", "must be between 1s and 2m")
	}
	if s.DisableAfter < Duration(time.Minute) || s.DisableAfter > Duration(90*24*time.Hour) {
		fail("/disableAfter", "must be between 1m and 2160h")
	}
	return invalid(errs)
}

func validHeaderName(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// SecretPrefix starts every signing secret, as the Standard Webhooks
// specification writes them.
const SecretPrefix = "whsec_"

// NewSigningSecret returns a fresh secret: whsec_ and 32 random bytes in
// base64.
func NewSigningSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// SigningSecret is one secret of a subscription. The current one has no
// ExpiresAt; a rotated one signs beside it until ExpiresAt.
type SigningSecret struct {
	Secret    string     `json:"secret"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// SubscriptionService stores subscriptions. Each change writes its system
// event (subject type subscription) in the same commit; secrets never
// appear in them.
type SubscriptionService interface {
	// CreateSubscription stores s with its first secret. Its Cursor is the
	// account's last seq when Cursor is 0 (deliver what is stored from
	// now on), 0 when it is negative (replay everything), else the seq
	// given (replay what follows it).
	CreateSubscription(ctx context.Context, s *Subscription, secret string) error
	// FindSubscriptionByID returns ENOTFOUND if the account has no such
	// subscription.
	FindSubscriptionByID(ctx context.Context, accountID, id string) (*Subscription, error)
	// FindSubscriptions returns the account's subscriptions, oldest first.
	FindSubscriptions(ctx context.Context, accountID string) ([]*Subscription, error)
	// UpdateSubscription replaces the settings a client may change (URL,
	// filter, headers, template, limits, schedule); state, cursor and
	// times are kept. ENOTFOUND if there is none.
	UpdateSubscription(ctx context.Context, s *Subscription) error
	// SetSubscriptionState moves it to state with reason (pause, resume,
	// disable), writing the system event: updated for a pause or resume,
	// failed when disabled, recovered when a failing one succeeds again.
	SetSubscriptionState(ctx context.Context, accountID, id, state, reason string) error
	// DeleteSubscription removes it with its pending messages and
	// attempts.
	DeleteSubscription(ctx context.Context, accountID, id string) error
	// FindSigningSecrets returns the secrets that sign now: the current
	// one first, then rotated ones not yet expired.
	FindSigningSecrets(ctx context.Context, accountID, id string) ([]SigningSecret, error)
	// RotateSigningSecret makes secret the current one; the one it
	// replaces signs until oldExpiresAt.
	RotateSigningSecret(ctx context.Context, accountID, id, secret string, oldExpiresAt time.Time) error
}
