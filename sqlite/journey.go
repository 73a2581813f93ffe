package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

const sessionColumns = `id, entity_id, started_at, last_activity_at, ended_at, end_reason, expires_at,
	event_count, start_event_id, start_seq, last_seq`

// upsertSession writes a session as herald.PlanAppend left it; its
// arguments are sessionArgs. An update leaves alone what a session's first
// event set once: its entity, start and start_seq, whose index it spares.
// upsertOpenSession writes one still open: it leaves ended_at alone too,
// which spares the partial index of open sessions whose WHERE names it
// (SQLite rewrites the entry of every index whose columns or condition a
// SET names, changed or not).
const (
	upsertSession = `INSERT INTO sessions (account_id, ` + sessionColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (account_id, id) DO UPDATE SET
		last_activity_at = excluded.last_activity_at, ended_at = excluded.ended_at,
		end_reason = excluded.end_reason, expires_at = excluded.expires_at,
		event_count = excluded.event_count, last_seq = excluded.last_seq`
	upsertOpenSession = `INSERT INTO sessions (account_id, ` + sessionColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (account_id, id) DO UPDATE SET
		last_activity_at = excluded.last_activity_at, expires_at = excluded.expires_at,
		event_count = excluded.event_count, last_seq = excluded.last_seq`
)

// sessionArgs returns the arguments of upsertSession for s.
func sessionArgs(s *herald.Session) []any {
	return []any{
		s.AccountID, s.ID, nullIfEmpty(s.EntityID), micros(s.StartedAt), micros(s.LastActivityAt),
		nullTime(s.EndedAt), nullIfEmpty(s.EndReason), nullIfZero(s.ExpiresAt),
		s.EventCount, s.StartEventID, s.StartSeq, s.LastSeq,
	}
}

// scanSession reads a row of sessionColumns.
func scanSession(row interface{ Scan(...any) error }, accountID string) (*herald.Session, error) {
	s := &herald.Session{AccountID: accountID}
	var (
		entityID, endReason   sql.NullString
		started, lastActivity int64
		endedAt, expiresAt    sql.NullInt64
	)
	if err := row.Scan(&s.ID, &entityID, &started, &lastActivity, &endedAt, &endReason, &expiresAt,
		&s.EventCount, &s.StartEventID, &s.StartSeq, &s.LastSeq); err != nil {
		return nil, err
	}
	s.EntityID, s.EndReason = entityID.String, endReason.String
	s.StartedAt, s.LastActivityAt = fromMicros(started), fromMicros(lastActivity)
	s.EndedAt, s.ExpiresAt = timePtr(endedAt), timeOrZero(expiresAt)
	return s, nil
}

const visitColumns = `id, entity_id, started_at, last_activity_at, ended_at, end_reason, expires_at,
	event_count, first_seq, last_seq`

// upsertVisit writes a visit as herald.PlanAppend left it; its arguments
// are visitArgs. An update leaves alone its entity, start and first_seq;
// upsertOpenVisit, for one still open, leaves ended_at alone as well (see
// upsertOpenSession).
const (
	upsertVisit = `INSERT INTO visits (account_id, ` + visitColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (account_id, id) DO UPDATE SET
		last_activity_at = excluded.last_activity_at, ended_at = excluded.ended_at,
		end_reason = excluded.end_reason, expires_at = excluded.expires_at,
		event_count = excluded.event_count, last_seq = excluded.last_seq`
	upsertOpenVisit = `INSERT INTO visits (account_id, ` + visitColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (account_id, id) DO UPDATE SET
		last_activity_at = excluded.last_activity_at, expires_at = excluded.expires_at,
		event_count = excluded.event_count, last_seq = excluded.last_seq`
)

// visitArgs returns the arguments of upsertVisit for v.
func visitArgs(v *herald.Visit) []any {
	return []any{
		v.AccountID, v.ID, v.EntityID, micros(v.StartedAt), micros(v.LastActivityAt),
		nullTime(v.EndedAt), nullIfEmpty(v.EndReason), nullIfZero(v.ExpiresAt),
		v.EventCount, v.FirstSeq, v.LastSeq,
	}
}

// scanVisit reads a row of visitColumns.
func scanVisit(row interface{ Scan(...any) error }, accountID string) (*herald.Visit, error) {
	v := &herald.Visit{AccountID: accountID}
	var (
		endReason             sql.NullString
		started, lastActivity int64
		endedAt, expiresAt    sql.NullInt64
	)
	if err := row.Scan(&v.ID, &v.EntityID, &started, &lastActivity, &endedAt, &endReason, &expiresAt,
		&v.EventCount, &v.FirstSeq, &v.LastSeq); err != nil {
		return nil, err
	}
	v.EndReason = endReason.String
	v.StartedAt, v.LastActivityAt = fromMicros(started), fromMicros(lastActivity)
	v.EndedAt, v.ExpiresAt = timePtr(endedAt), timeOrZero(expiresAt)
	return v, nil
}

// nullTime stores a nil time as NULL.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return micros(*t)
}

// nullIfZero stores a zero time as NULL.
func nullIfZero(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

func timePtr(us sql.NullInt64) *time.Time {
	if !us.Valid {
		return nil
	}
	t := fromMicros(us.Int64)
	return &t
}

func timeOrZero(us sql.NullInt64) time.Time {
	if !us.Valid {
		return time.Time{}
	}
	return fromMicros(us.Int64)
}

// journeyTable is what the reads of sessions and of visits differ by.
type journeyTable[T any] struct {
	noun      string // "session" or "visit"
	table     string // "sessions" or "visits"
	columns   string // sessionColumns or visitColumns
	seqColumn string // the seq a row began at, its order
	scan      func(row interface{ Scan(...any) error }, accountID string) (T, error)
}

var (
	sessionTable = journeyTable[*herald.Session]{"session", "sessions", sessionColumns, "start_seq", scanSession}
	visitTable   = journeyTable[*herald.Visit]{"visit", "visits", visitColumns, "first_seq", scanVisit}
)

// findByID returns ENOTFOUND if the account has no such row.
func (j journeyTable[T]) findByID(ctx context.Context, db *sql.DB, accountID, id string) (T, error) {
	row := db.QueryRowContext(ctx, "SELECT "+j.columns+" FROM "+j.table+" WHERE account_id = ? AND id = ?", accountID, id)
	x, err := j.scan(row, accountID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		err = herald.Errorf(herald.ENOTFOUND, "%s %q not found", j.noun, id)
	case err != nil:
		err = fmt.Errorf("find %s %s: %w", j.noun, id, err)
	default:
		return x, nil
	}
	var zero T
	return zero, err
}

// find returns up to f.Limit rows of the account, in the order they began
// (seqColumn).
func (j journeyTable[T]) find(ctx context.Context, db *sql.DB, accountID string, f herald.JourneyFilter) ([]T, error) {
	q, args, err := journeyQuery(j.table, j.columns, j.seqColumn, accountID, f)
	if err != nil {
		return nil, err
	}
	list, err := queryAll(ctx, db, q, args, func(rows *sql.Rows) (T, error) {
		return j.scan(rows, accountID)
	})
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", j.table, err)
	}
	return list, nil
}

// FindSessionByID returns ENOTFOUND if the account has no such session.
func (s *Store) FindSessionByID(ctx context.Context, accountID, id string) (*herald.Session, error) {
	return sessionTable.findByID(ctx, s.read, accountID, id)
}

// FindSessions returns up to f.Limit sessions of the account, in the order
// they began (start_seq).
func (s *Store) FindSessions(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Session, error) {
	return sessionTable.find(ctx, s.read, accountID, f)
}

// FindVisitByID returns ENOTFOUND if the account has no such visit.
func (s *Store) FindVisitByID(ctx context.Context, accountID, id string) (*herald.Visit, error) {
	return visitTable.findByID(ctx, s.read, accountID, id)
}

// FindVisits returns up to f.Limit visits of the account, in the order
// they began (first_seq).
func (s *Store) FindVisits(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Visit, error) {
	return visitTable.find(ctx, s.read, accountID, f)
}

// journeyQuery returns the SQL and parameters that select the columns of
// up to f.Limit rows of table (sessions or visits) that match f, ordered
// by seqColumn, the seq they began at. Table and column names are
// constants; values are always parameters.
func journeyQuery(table, columns, seqColumn, accountID string, f herald.JourneyFilter) (string, []any, error) {
	if f.Limit <= 0 {
		return "", nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	var q strings.Builder
	q.WriteString("SELECT " + columns + " FROM " + table + " WHERE account_id = ?")
	args := []any{accountID}
	if f.EntityID != "" {
		q.WriteString(" AND entity_id = ?")
		args = append(args, f.EntityID)
	}
	switch f.State {
	case "":
	case herald.JourneyOpen:
		q.WriteString(" AND ended_at IS NULL")
	case herald.JourneyClosed:
		q.WriteString(" AND ended_at IS NOT NULL")
	default:
		return "", nil, herald.Errorf(herald.EINVALID, "state must be %q or %q", herald.JourneyOpen, herald.JourneyClosed)
	}
	if !f.StartedAfter.IsZero() {
		q.WriteString(" AND started_at >= ?")
		args = append(args, micros(f.StartedAfter))
	}
	if !f.StartedBefore.IsZero() {
		q.WriteString(" AND started_at < ?")
		args = append(args, micros(f.StartedBefore))
	}
	if f.AfterSeq > 0 {
		q.WriteString(" AND " + seqColumn + " > ?")
		args = append(args, f.AfterSeq)
	}
	q.WriteString(" ORDER BY " + seqColumn + " LIMIT ?")
	args = append(args, f.Limit)
	return q.String(), args, nil
}

// expired is a session, or an entity's open visit, whose time ran out.
type expired struct {
	accountID, id string // the session's id, or the visit's entity
	session       bool
	expiresAt     int64
}

// ExpireJourneys ends up to limit sessions and visits whose time ran out by
// now, with their system events, and returns how many it ended. It finds
// them on a read connection, then for each account, in one write
// transaction, reads them again and lets herald.PlanExpiry decide: an
// event that kept one alive since, or another sweeper that ended it
// first, leaves it to be, so each ends once.
func (s *Store) ExpireJourneys(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	due, err := s.dueJourneys(ctx, now, limit)
	if err != nil {
		return 0, fmt.Errorf("expire journeys: %w", err)
	}
	byAccount := map[string]*herald.AppendKeys{}
	var accounts []string
	for _, d := range due {
		k := byAccount[d.accountID]
		if k == nil {
			k = &herald.AppendKeys{Accounts: []string{d.accountID}}
			byAccount[d.accountID] = k
			accounts = append(accounts, d.accountID)
		}
		ref := herald.Ref{AccountID: d.accountID, ID: d.id}
		if d.session {
			k.Sessions = append(k.Sessions, ref)
		} else if !slices.Contains(k.Visits, ref) {
			k.Visits = append(k.Visits, ref)
		}
	}
	slices.Sort(accounts)
	ended := 0
	for _, acct := range accounts {
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
func (s *Store) dueJourneys(ctx context.Context, now time.Time, limit int) ([]expired, error) {
	var due []expired
	for _, q := range []struct {
		session bool
		query   string
	}{
		{true, `SELECT account_id, id, expires_at FROM sessions
			WHERE ended_at IS NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?`},
		{false, `SELECT account_id, entity_id, expires_at FROM visits
			WHERE ended_at IS NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?`},
	} {
		found, err := queryAll(ctx, s.read, q.query, []any{micros(now), limit}, func(rows *sql.Rows) (expired, error) {
			d := expired{session: q.session}
			err := rows.Scan(&d.accountID, &d.id, &d.expiresAt)
			return d, err
		})
		if err != nil {
			return nil, err
		}
		due = append(due, found...)
	}
	slices.SortStableFunc(due, func(a, b expired) int { return cmp.Compare(a.expiresAt, b.expiresAt) })
	return due[:min(len(due), limit)], nil
}

// expireAccount ends, in one write transaction, those of the account's
// sessions and visits named by k that are still open and due by now, and
// returns how many it ended.
func (s *Store) expireAccount(ctx context.Context, k herald.AppendKeys, now time.Time) (int, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	st, err := s.appendState(ctx, tx, k)
	if err != nil {
		return 0, err
	}
	plan, err := herald.PlanExpiry(st, now)
	if err != nil {
		return 0, err
	}
	ended := countEnded(plan.Sessions) + countEnded(plan.Visits)
	if len(plan.Events) == 0 && len(plan.Sessions) == 0 && len(plan.Visits) == 0 {
		return 0, nil
	}
	if err := s.writePlan(ctx, tx, plan); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return ended, nil
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
