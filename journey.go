package herald

import (
	"context"
	"time"
)

// Why a session or visit ended.
const (
	EndLogout    = "logout"    // a logout event of the session
	EndTimeout   = "timeout"   // no event for the inactivity (visit) timeout
	EndMaxLength = "maxLength" // the session reached its maximum length
)

// Session is one login's run of events: it begins with a login event
// (Settings.Sessions.LoginTypes) and ends with a logout, an inactivity
// timeout or its maximum length. Times are Herald's (receivedAt), so that
// a timeout means the same to an event that arrives and to the sweeper
// that ends the session when none does.
type Session struct {
	ID        string `json:"id"`
	AccountID string `json:"-"`
	// EntityID is the entity of the login event, if it had one.
	EntityID       string    `json:"entityId,omitempty"`
	StartedAt      time.Time `json:"startedAt"`
	LastActivityAt time.Time `json:"lastActivityAt"`
	// EndedAt and EndReason are set once the session ended; a timeout
	// ends it at the moment the timeout ran out.
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	EndReason string     `json:"endReason,omitempty"`
	// ExpiresAt is when it ends if nothing more happens; zero once ended.
	ExpiresAt    time.Time `json:"expiresAt,omitzero"`
	EventCount   int64     `json:"eventCount"`
	StartEventID string    `json:"startEventId"`
	StartSeq     int64     `json:"startSeq"`
	LastSeq      int64     `json:"lastSeq"`
}

// Open reports whether the session has not ended.
func (s *Session) Open() bool { return s.EndedAt == nil }

// Clone returns a copy of s.
func (s *Session) Clone() *Session {
	c := *s
	if s.EndedAt != nil {
		t := *s.EndedAt
		c.EndedAt = &t
	}
	return &c
}

// Visit is one entity's run of activity with no pause longer than the
// visit timeout, logged in or not.
type Visit struct {
	ID             string     `json:"id"`
	AccountID      string     `json:"-"`
	EntityID       string     `json:"entityId"`
	StartedAt      time.Time  `json:"startedAt"`
	LastActivityAt time.Time  `json:"lastActivityAt"`
	EndedAt        *time.Time `json:"endedAt,omitempty"`
	EndReason      string     `json:"endReason,omitempty"`
	ExpiresAt      time.Time  `json:"expiresAt,omitzero"`
	EventCount     int64      `json:"eventCount"`
	FirstSeq       int64      `json:"firstSeq"`
	LastSeq        int64      `json:"lastSeq"`
}

// Open reports whether the visit has not ended.
func (v *Visit) Open() bool { return v.EndedAt == nil }

// Clone returns a copy of v.
func (v *Visit) Clone() *Visit {
	c := *v
	if v.EndedAt != nil {
		t := *v.EndedAt
		c.EndedAt = &t
	}
	return &c
}

// Journey states a JourneyFilter selects.
const (
	JourneyOpen   = "open"
	JourneyClosed = "closed"
)

// JourneyFilter selects sessions or visits. Zero fields do not filter.
// Results are ordered by StartSeq (sessions) or FirstSeq (visits).
type JourneyFilter struct {
	EntityID string
	// State is JourneyOpen, JourneyClosed or empty for both.
	State string
	// StartedAfter is inclusive, StartedBefore exclusive.
	StartedAfter  time.Time
	StartedBefore time.Time
	// AfterSeq is the paging cursor: only those that began after it.
	AfterSeq int64
	Limit    int
}

// SessionService finds sessions. AppendEvents keeps them.
type SessionService interface {
	// FindSessionByID returns ENOTFOUND if the account has no such session.
	FindSessionByID(ctx context.Context, accountID, id string) (*Session, error)
	FindSessions(ctx context.Context, accountID string, f JourneyFilter) ([]*Session, error)
}

// VisitService finds visits. AppendEvents keeps them.
type VisitService interface {
	// FindVisitByID returns ENOTFOUND if the account has no such visit.
	FindVisitByID(ctx context.Context, accountID, id string) (*Visit, error)
	FindVisits(ctx context.Context, accountID string, f JourneyFilter) ([]*Visit, error)
}

// JourneySweeper ends the sessions and visits whose time ran out while no
// event came, writing their system events. Several nodes may sweep at
// once: each expiry happens once.
type JourneySweeper interface {
	// ExpireJourneys ends up to limit sessions and visits that expired by
	// now and returns how many it ended.
	ExpireJourneys(ctx context.Context, now time.Time, limit int) (int, error)
}
