package herald

import (
	"context"
	"time"
)

// States of a message: an event on its way to a subscription that did not
// get through at its first attempt. An event delivered at once never
// becomes a message; the subscription's cursor moves past it.
const (
	// MessageRetrying waits for NextAttemptAt.
	MessageRetrying = "retrying"
	// MessageWaiting, in ordered mode, waits for an earlier message of
	// the same order key to finish.
	MessageWaiting = "waiting"
	// MessageDead has used up its schedule, or got a final answer (a 4xx
	// other than 408, 410 and 429). It stays until retried by hand.
	MessageDead = "dead"
)

// Message is one event's pending or given-up delivery to one subscription.
type Message struct {
	AccountID      string `json:"-"`
	SubscriptionID string `json:"subscriptionId"`
	EventID        string `json:"eventId"`
	Seq            int64  `json:"seq"`
	// OrderKey is the event's lifecycle id, else its entity, for ordered
	// subscriptions; empty otherwise.
	OrderKey      string    `json:"orderKey,omitempty"`
	State         string    `json:"state"`
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	LastStatus    int       `json:"lastStatus,omitempty"`
	LastError     string    `json:"lastError,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// Outcomes of an attempt.
const (
	AttemptDelivered = "delivered" // a 2xx
	AttemptFailed    = "failed"    // will be tried again
	AttemptFinal     = "final"     // failed, and not tried again (dead, or 410)
)

// Attempt is one HTTP request of a delivery, as recorded.
type Attempt struct {
	ID             int64     `json:"id"`
	AccountID      string    `json:"-"`
	SubscriptionID string    `json:"subscriptionId"`
	EventID        string    `json:"eventId"`
	Seq            int64     `json:"seq"`
	Number         int       `json:"number"` // 1 for the first attempt
	At             time.Time `json:"at"`
	Outcome        string    `json:"outcome"`
	StatusCode     int       `json:"statusCode,omitempty"`
	// LatencyMicros is from sending the request to reading the answer's
	// head, in microseconds.
	LatencyMicros int64  `json:"latencyMicros"`
	Error         string `json:"error,omitempty"`
	// Response is the start of the answer's body, at most 1 KiB.
	Response string `json:"response,omitempty"`
}

// MaxResponseExcerpt is how much of an answer's body an attempt keeps.
const MaxResponseExcerpt = 1 << 10

// AttemptFilter selects attempts. Zero fields do not filter; results are
// newest first.
type AttemptFilter struct {
	Outcome string
	EventID string
	// After is inclusive, Before exclusive.
	After, Before time.Time
	// BeforeID is the paging cursor: attempts older than it.
	BeforeID int64
	Limit    int
}

// DeliveryProgress is what a deliverer saves in one commit: the attempts
// it made, the messages they created, changed or finished, and how far the
// cursor moved. Saving it refuses (ECONFLICT) a deliverer that no longer
// holds the subscription's lease, so two nodes never both record.
type DeliveryProgress struct {
	AccountID      string
	SubscriptionID string
	Owner          string
	// Cursor is the new cursor, 0 for unchanged. Every matching event up
	// to it is delivered, dead, or among the messages.
	Cursor   int64
	Attempts []*Attempt
	// Messages are inserted or replaced (by subscription and seq).
	Messages []*Message
	// Done are the seqs of messages that are finished: delivered.
	Done []int64
	// FailingSince is set at the first failure after a success, and
	// cleared (ClearFailing) at a success after failures.
	FailingSince *time.Time
	ClearFailing bool
}

// MessageFilter selects messages for a manual retry or a listing.
type MessageFilter struct {
	State    string
	EventIDs []string
	// After is inclusive, Before exclusive, on CreatedAt.
	After, Before time.Time
	AfterSeq      int64
	Limit         int
}

// DeliveryService is what the delivery engine needs of a store.
type DeliveryService interface {
	// LeaseSubscriptions returns the active subscriptions of all accounts
	// that owner holds after the call: those it held, and free ones (never
	// leased, or whose lease expired) it takes now, up to max in all. It
	// extends each to now+ttl.
	LeaseSubscriptions(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*Subscription, error)
	// ReleaseSubscriptions gives owner's leases up (at shutdown).
	ReleaseSubscriptions(ctx context.Context, owner string) error
	// SaveDelivery stores p in one transaction; ECONFLICT if p.Owner does
	// not hold the lease.
	SaveDelivery(ctx context.Context, p *DeliveryProgress) error
	// DueMessages returns up to limit messages to send now, by seq: the
	// retrying ones due by now and, for each order key, the oldest message
	// that is not dead when it is waiting (its turn came) or due. A
	// retrying or waiting message with an order key is sent only when it
	// is the oldest not-dead message of its key.
	DueMessages(ctx context.Context, accountID, subscriptionID string, now time.Time, limit int) ([]*Message, error)
	// FindMessages lists messages, by seq.
	FindMessages(ctx context.Context, accountID, subscriptionID string, f MessageFilter) ([]*Message, error)
	// RetryMessages makes the dead messages that f selects due now again,
	// with a fresh schedule, and returns how many.
	RetryMessages(ctx context.Context, accountID, subscriptionID string, f MessageFilter, now time.Time) (int, error)
	// FindAttempts lists the subscription's attempts.
	FindAttempts(ctx context.Context, accountID, subscriptionID string, f AttemptFilter) ([]*Attempt, error)
	// PruneAttempts deletes up to limit of the oldest attempts, of every
	// account, made before before, and returns how many it deleted: the
	// attempt log's retention, done in small steps so that no commit
	// holds the writer long.
	PruneAttempts(ctx context.Context, before time.Time, limit int) (int, error)
}

// DefaultAttemptRetention is how long attempts are kept.
const DefaultAttemptRetention = 30 * 24 * time.Hour
