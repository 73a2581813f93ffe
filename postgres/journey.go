package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald"
)

const sessionColumns = `account_id, id, entity_id, started_at, last_activity_at, ended_at, end_reason,
	expires_at, event_count, start_event_id, start_seq, last_seq`

const visitColumns = `account_id, id, entity_id, started_at, last_activity_at, ended_at, end_reason,
	expires_at, event_count, first_seq, last_seq`

// The statements of AppendEvents (and ExpireJourneys) for sessions and
// visits. The lookups run after the account lock, like those of event.go,
// one key at a time through an index. The writes are upserts: a session
// or visit is inserted by the commit that begins it and updated by later
// ones, all under the account's lock. An update leaves alone what the
// first event set once (entity, start, first seq), sparing their indexes.
const (
	findSessionsSQL = `SELECT s.* FROM unnest($1::text[], $2::text[]) AS u (account_id, id)
		CROSS JOIN LATERAL (SELECT ` + sessionColumns + ` FROM sessions
			WHERE sessions.account_id = u.account_id AND sessions.id = u.id) AS s`

	// findOpenVisitsSQL reads the open visit of each entity. There is at
	// most one; should there ever be two, the newest counts.
	findOpenVisitsSQL = `SELECT v.* FROM unnest($1::text[], $2::text[]) AS u (account_id, entity_id)
		CROSS JOIN LATERAL (SELECT ` + visitColumns + ` FROM visits
			WHERE visits.account_id = u.account_id AND visits.entity_id = u.entity_id AND visits.ended_at IS NULL
			ORDER BY first_seq DESC LIMIT 1) AS v`

	upsertSessionsSQL = `INSERT INTO sessions (` + sessionColumns + `)
	SELECT account_id, id, NULLIF(entity_id, ''), started_at, last_activity_at, ended_at, NULLIF(end_reason, ''),
		expires_at, event_count, start_event_id, start_seq, last_seq
	FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
		$7::text[], $8::timestamptz[], $9::bigint[], $10::text[], $11::bigint[], $12::bigint[])
		AS u (` + sessionColumns + `)
	ON CONFLICT (account_id, id) DO UPDATE SET
		last_activity_at = EXCLUDED.last_activity_at, ended_at = EXCLUDED.ended_at,
		end_reason = EXCLUDED.end_reason, expires_at = EXCLUDED.expires_at,
		event_count = EXCLUDED.event_count, last_seq = EXCLUDED.last_seq`

	upsertVisitsSQL = `INSERT INTO visits (` + visitColumns + `)
	SELECT account_id, id, entity_id, started_at, last_activity_at, ended_at, NULLIF(end_reason, ''),
		expires_at, event_count, first_seq, last_seq
	FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
		$7::text[], $8::timestamptz[], $9::bigint[], $10::bigint[], $11::bigint[])
		AS u (` + visitColumns + `)
	ON CONFLICT (account_id, id) DO UPDATE SET
		last_activity_at = EXCLUDED.last_activity_at, ended_at = EXCLUDED.ended_at,
		end_reason = EXCLUDED.end_reason, expires_at = EXCLUDED.expires_at,
		event_count = EXCLUDED.event_count, last_seq = EXCLUDED.last_seq`
)

// queueSessions queues the upsert of the sessions a plan lists.
func queueSessions(b *pgx.Batch, sessions []*herald.Session) {
	n := len(sessions)
	if n == 0 {
		return
	}
	var (
		cAccount, cID, cEntity, cReason = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		cStarted, cLastActivity         = make([]time.Time, n), make([]time.Time, n)
		cEnded, cExpires                = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		cCount, cStartSeq, cLastSeq     = make([]int64, n), make([]int64, n), make([]int64, n)
		cStartEvent                     = make([]string, n)
	)
	for i, s := range sessions {
		cAccount[i], cID[i], cEntity[i], cReason[i] = s.AccountID, s.ID, s.EntityID, s.EndReason
		cStarted[i], cLastActivity[i] = s.StartedAt, s.LastActivityAt
		cEnded[i], cExpires[i] = nullTime(s.EndedAt), nullIfZero(s.ExpiresAt)
		cCount[i], cStartSeq[i], cLastSeq[i], cStartEvent[i] = s.EventCount, s.StartSeq, s.LastSeq, s.StartEventID
	}
	b.Queue(upsertSessionsSQL, cAccount, cID, cEntity, cStarted, cLastActivity, cEnded, cReason,
		cExpires, cCount, cStartEvent, cStartSeq, cLastSeq)
}

// queueVisits queues the upsert of the visits a plan lists, in its order:
// the visits that ended come first.
func queueVisits(b *pgx.Batch, visits []*herald.Visit) {
	n := len(visits)
	if n == 0 {
		return
	}
	var (
		cAccount, cID, cEntity, cReason = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		cStarted, cLastActivity         = make([]time.Time, n), make([]time.Time, n)
		cEnded, cExpires                = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		cCount, cFirstSeq, cLastSeq     = make([]int64, n), make([]int64, n), make([]int64, n)
	)
	for i, v := range visits {
		cAccount[i], cID[i], cEntity[i], cReason[i] = v.AccountID, v.ID, v.EntityID, v.EndReason
		cStarted[i], cLastActivity[i] = v.StartedAt, v.LastActivityAt
		cEnded[i], cExpires[i] = nullTime(v.EndedAt), nullIfZero(v.ExpiresAt)
		cCount[i], cFirstSeq[i], cLastSeq[i] = v.EventCount, v.FirstSeq, v.LastSeq
	}
	b.Queue(upsertVisitsSQL, cAccount, cID, cEntity, cStarted, cLastActivity, cEnded, cReason,
		cExpires, cCount, cFirstSeq, cLastSeq)
}

// nullTime stores a nil time as NULL.
func nullTime(t *time.Time) pgtype.Timestamptz {
	if t == nil {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: *t, Valid: true}
}

// nullIfZero stores a zero time as NULL.
func nullIfZero(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// timePtr reads a nullable time.
func timePtr(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// timeOrZero reads a nullable time, NULL as the zero time.
func timeOrZero(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// scanSession reads a row of sessionColumns.
func scanSession(row scanner) (*herald.Session, error) {
	var (
		s                   herald.Session
		entityID, reason    *string
		endedAt, expiresAt  pgtype.Timestamptz
		started, lastActive time.Time
	)
	if err := row.Scan(&s.AccountID, &s.ID, &entityID, &started, &lastActive, &endedAt, &reason,
		&expiresAt, &s.EventCount, &s.StartEventID, &s.StartSeq, &s.LastSeq); err != nil {
		return nil, err
	}
	if entityID != nil {
		s.EntityID = *entityID
	}
	if reason != nil {
		s.EndReason = *reason
	}
	s.StartedAt, s.LastActivityAt = started.UTC(), lastActive.UTC()
	s.EndedAt, s.ExpiresAt = timePtr(endedAt), timeOrZero(expiresAt)
	return &s, nil
}

// scanVisit reads a row of visitColumns.
func scanVisit(row scanner) (*herald.Visit, error) {
	var (
		v                   herald.Visit
		reason              *string
		endedAt, expiresAt  pgtype.Timestamptz
		started, lastActive time.Time
	)
	if err := row.Scan(&v.AccountID, &v.ID, &v.EntityID, &started, &lastActive, &endedAt, &reason,
		&expiresAt, &v.EventCount, &v.FirstSeq, &v.LastSeq); err != nil {
		return nil, err
	}
	if reason != nil {
		v.EndReason = *reason
	}
	v.StartedAt, v.LastActivityAt = started.UTC(), lastActive.UTC()
	v.EndedAt, v.ExpiresAt = timePtr(endedAt), timeOrZero(expiresAt)
	return &v, nil
}

// journeyTable is what the reads of sessions and of visits differ by.
type journeyTable[T any] struct {
	noun      string // "session" or "visit"
	table     string // "sessions" or "visits"
	columns   string // sessionColumns or visitColumns
	seqColumn string // the seq a row began at, its order
	scan      func(scanner) (T, error)
}

var (
	sessionTable = journeyTable[*herald.Session]{"session", "sessions", sessionColumns, "start_seq", scanSession}
	visitTable   = journeyTable[*herald.Visit]{"visit", "visits", visitColumns, "first_seq", scanVisit}
)

// findByID returns the account's row id, or ENOTFOUND.
func (j journeyTable[T]) findByID(ctx context.Context, pool *pgxpool.Pool, accountID, id string) (T, error) {
	var zero T
	notFound := herald.Errorf(herald.ENOTFOUND, "%s %q not found", j.noun, id)
	if !textOK(accountID) || !textOK(id) {
		return zero, notFound // could not have been stored
	}
	x, err := j.scan(pool.QueryRow(ctx,
		`SELECT `+j.columns+` FROM `+j.table+` WHERE account_id = $1 AND id = $2`, accountID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return zero, notFound
	} else if err != nil {
		return zero, fmt.Errorf("find %s %s: %w", j.noun, id, err)
	}
	return x, nil
}

// find returns up to f.Limit of the account's rows that match f, in the
// order they began (seqColumn).
func (j journeyTable[T]) find(ctx context.Context, pool *pgxpool.Pool, accountID string, f herald.JourneyFilter) ([]T, error) {
	q, none, err := journeyQuery(j.table, j.columns, j.seqColumn, accountID, f)
	if err != nil {
		return nil, err
	}
	if none {
		return []T{}, nil
	}
	rows, _ := pool.Query(ctx, q.sql.String(), q.args...)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) {
		return j.scan(row)
	})
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", j.table, err)
	}
	if list == nil {
		list = []T{}
	}
	return list, nil
}

// FindSessionByID returns the account's session id, or ENOTFOUND.
func (s *Store) FindSessionByID(ctx context.Context, accountID, id string) (*herald.Session, error) {
	return sessionTable.findByID(ctx, s.pool, accountID, id)
}

// FindSessions returns up to f.Limit of the account's sessions that match
// f, in the order they began (start_seq).
func (s *Store) FindSessions(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Session, error) {
	return sessionTable.find(ctx, s.pool, accountID, f)
}

// FindVisitByID returns the account's visit id, or ENOTFOUND.
func (s *Store) FindVisitByID(ctx context.Context, accountID, id string) (*herald.Visit, error) {
	return visitTable.findByID(ctx, s.pool, accountID, id)
}

// FindVisits returns up to f.Limit of the account's visits that match f,
// in the order they began (first_seq).
func (s *Store) FindVisits(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Visit, error) {
	return visitTable.find(ctx, s.pool, accountID, f)
}

// journeyQuery builds the query of FindSessions or FindVisits: the columns
// of up to f.Limit rows of table that match f, ordered by seqColumn, the
// seq they began at. none reports a filter no stored row can match.
func journeyQuery(table, columns, seqColumn, accountID string, f herald.JourneyFilter) (q *query, none bool, err error) {
	if f.Limit <= 0 {
		return nil, false, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	q = newQuery(`SELECT `+columns+` FROM `+table+` WHERE account_id = $1`, accountID)
	none = !textOK(accountID) || !textOK(f.EntityID)
	if f.EntityID != "" {
		q.where("entity_id =", f.EntityID)
	}
	switch f.State {
	case "":
	case herald.JourneyOpen:
		q.and("ended_at IS NULL")
	case herald.JourneyClosed:
		q.and("ended_at IS NOT NULL")
	default:
		return nil, false, herald.Errorf(herald.EINVALID, "state must be %q or %q", herald.JourneyOpen, herald.JourneyClosed)
	}
	if !f.StartedAfter.IsZero() {
		q.where("started_at >=", f.StartedAfter)
	}
	if !f.StartedBefore.IsZero() {
		q.where("started_at <", f.StartedBefore)
	}
	if f.AfterSeq > 0 {
		q.where(seqColumn+" >", f.AfterSeq)
	}
	q.orderLimit(seqColumn, f.Limit)
	return q, none, nil
}

// due is an open session, or an entity's open visit, whose time ran out.
type due struct {
	ref       herald.Ref // the session's id, or the visit's entity
	session   bool
	expiresAt time.Time
}

// ExpireJourneys ends up to limit sessions and visits whose time ran out by
// now, with their system events, and returns how many it ended.
//
// It finds them without a lock, then for each account, in one transaction
// that takes the account's lock as AppendEvents does, reads them again
// and lets herald.PlanExpiry decide. Another node that swept them first,
// or an event that kept one alive since, leaves it ended or not yet due
// by the time the lock is held, and the reads run after the lock: each
// ends once, whichever nodes sweep.
func (s *Store) ExpireJourneys(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	found, err := s.dueJourneys(ctx, now, limit)
	if err != nil {
		return 0, fmt.Errorf("expire journeys: %w", err)
	}
	byAccount := map[string]*herald.AppendKeys{}
	for _, d := range found {
		k := byAccount[d.ref.AccountID]
		if k == nil {
			k = &herald.AppendKeys{Accounts: []string{d.ref.AccountID}}
			byAccount[d.ref.AccountID] = k
		}
		switch {
		case d.session:
			k.Sessions = append(k.Sessions, d.ref)
		case !slices.Contains(k.Visits, d.ref):
			k.Visits = append(k.Visits, d.ref)
		}
	}
	ended := 0
	for _, acct := range slices.Sorted(maps.Keys(byAccount)) {
		n, err := s.expireAccount(ctx, *byAccount[acct], now)
		if err != nil {
			return ended, fmt.Errorf("expire journeys of %s: %w", acct, err)
		}
		ended += n
	}
	return ended, nil
}

// dueJourneys returns up to limit open sessions and visits that expired by
// now, those that expired first first.
func (s *Store) dueJourneys(ctx context.Context, now time.Time, limit int) ([]due, error) {
	var found []due
	for _, q := range []struct {
		session bool
		sql     string
	}{
		{true, `SELECT account_id, id, expires_at FROM sessions
			WHERE ended_at IS NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2`},
		{false, `SELECT account_id, entity_id, expires_at FROM visits
			WHERE ended_at IS NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2`},
	} {
		rows, err := s.pool.Query(ctx, q.sql, now, limit)
		if err != nil {
			return nil, err
		}
		d := due{session: q.session}
		_, err = pgx.ForEachRow(rows, []any{&d.ref.AccountID, &d.ref.ID, &d.expiresAt}, func() error {
			found = append(found, d)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(found, func(a, b due) int { return a.expiresAt.Compare(b.expiresAt) })
	return found[:min(len(found), limit)], nil
}

// expireAccount ends, in one transaction, those of the account's sessions
// and visits named by keys that are still open and due by now, and returns
// how many it ended.
func (s *Store) expireAccount(ctx context.Context, keys herald.AppendKeys, now time.Time) (int, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	plan, err := runAppend(ctx, conn, keys, func(st *herald.AppendState) (*herald.AppendPlan, error) {
		return herald.PlanExpiry(st, now)
	})
	if err != nil {
		rollback(conn)
		return 0, err
	}
	return countEnded(plan.Sessions) + countEnded(plan.Visits), nil
}

// countEnded returns how many of list have ended.
func countEnded[T interface{ Open() bool }](list []T) int {
	n := 0
	for _, x := range list {
		if !x.Open() {
			n++
		}
	}
	return n
}
