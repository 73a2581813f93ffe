package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald"
)

// The statements of AppendEvents. See doc.go for why they run in this order.
const (
	// lockAccountsSQL locks the rows of the accounts written to. Rows are
	// locked as they leave the sort, so in id order: two calls that share
	// accounts take them in the same order and cannot deadlock. FOR NO KEY
	// UPDATE conflicts with itself, as FOR UPDATE would, but not with the
	// KEY SHARE lock that inserting an API key takes on its account.
	lockAccountsSQL = `SELECT id, last_seq FROM accounts WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`

	// findStoredSQL finds which of the ids are already taken. It runs after
	// the lock, in its own statement, so its snapshot sees every event that
	// an earlier holder of the lock committed.
	findStoredSQL = `SELECT e.account_id, e.id, e.seq, e.received_at, e.hash
		FROM events e JOIN unnest($1::text[], $2::text[]) AS u (account_id, id)
		ON e.account_id = u.account_id AND e.id = u.id`

	insertEventsSQL = `INSERT INTO events (account_id, seq, id, category, type, event_status,
		event_lifecycle_id, core_customer_id, agent_id, session_id, primary_id, origin,
		occurred_at, received_at, hash, body)
	SELECT account_id, seq, id, category, type, NULLIF(event_status, ''),
		NULLIF(event_lifecycle_id, ''), NULLIF(core_customer_id, ''), NULLIF(agent_id, ''),
		NULLIF(session_id, ''), NULLIF(primary_id, ''), origin,
		occurred_at, received_at, hash, body
	FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
		$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
		$13::timestamptz[], $14::timestamptz[], $15::text[], $16::bytea[])
		AS u (account_id, seq, id, category, type, event_status,
		event_lifecycle_id, core_customer_id, agent_id, session_id, primary_id, origin,
		occurred_at, received_at, hash, body)`

	updateLastSeqSQL = `UPDATE accounts SET last_seq = u.last_seq
		FROM unnest($1::text[], $2::bigint[]) AS u (id, last_seq)
		WHERE accounts.id = u.id`
)

// eventKey identifies an event: ids are unique per account.
type eventKey struct{ account, id string }

// knownEvent is an event already stored, or accepted earlier in the same
// call (then res is its result, whose Seq is set once seqs are assigned).
type knownEvent struct {
	hash       string
	seq        int64
	receivedAt time.Time
	res        *herald.AppendResult
}

// AppendEvents stores the events of all batches in one transaction. See
// herald.EventService for the contract and doc.go for how seqs stay in
// commit order.
func (s *Store) AppendEvents(ctx context.Context, batches []*herald.AppendBatch) error {
	var (
		accountSet = map[string]bool{}
		idAccounts []string // (idAccounts[i], ids[i]) are the keys to look up
		ids        []string
	)
	for bi, b := range batches {
		if b == nil {
			return fmt.Errorf("append events: batch %d is nil", bi)
		}
		if len(b.Events) > 0 && !textOK(b.AccountID) {
			return herald.Errorf(herald.ENOTFOUND, "account %q not found", b.AccountID)
		}
		for i, e := range b.Events {
			if e == nil || e.ID == "" || e.Hash == "" {
				return fmt.Errorf("append events: batch %d, event %d is incomplete: id and hash must be set", bi, i)
			}
			if textOK(e.ID) { // else refused by checkText
				idAccounts = append(idAccounts, b.AccountID)
				ids = append(ids, e.ID)
			}
		}
		if len(b.Events) > 0 {
			accountSet[b.AccountID] = true
		}
	}
	for _, b := range batches {
		b.Results = make([]herald.AppendResult, len(b.Events))
	}
	if len(accountSet) == 0 {
		return nil
	}
	accounts := slices.Sorted(maps.Keys(accountSet))

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	defer conn.Release()

	stored, err := appendEvents(ctx, conn, batches, accounts, idAccounts, ids)
	if err != nil {
		rollback(conn)
		for _, e := range stored {
			e.Seq, e.Body = 0, nil
		}
		for _, b := range batches {
			b.Results = nil
		}
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// appendEvents runs the transaction of AppendEvents on conn and returns
// the events it stored (or meant to store, when it fails).
func appendEvents(ctx context.Context, conn *pgxpool.Conn, batches []*herald.AppendBatch, accounts, idAccounts, ids []string) ([]*herald.Event, error) {
	// Round trip 1: begin, lock the accounts, find the ids already taken.
	// Pipelined, the statements still run one after the other: the lookup
	// starts only once the locks are held.
	b := &pgx.Batch{}
	// READ COMMITTED whatever the server's default: the lookup must take a
	// snapshot of its own, after the lock (see doc.go).
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	lock := b.Queue(lockAccountsSQL, accounts)
	find := b.Queue(findStoredSQL, idAccounts, ids)
	lastSeq := make(map[string]int64, len(accounts))
	lock.Query(func(rows pgx.Rows) error {
		var (
			id  string
			seq int64
		)
		_, err := pgx.ForEachRow(rows, []any{&id, &seq}, func() error {
			lastSeq[id] = seq
			return nil
		})
		return err
	})
	known := make(map[eventKey]*knownEvent, len(ids))
	find.Query(func(rows pgx.Rows) error {
		var (
			k eventKey
			e knownEvent
		)
		_, err := pgx.ForEachRow(rows, []any{&k.account, &k.id, &e.seq, &e.receivedAt, &e.hash}, func() error {
			e := e
			e.receivedAt = e.receivedAt.UTC()
			known[k] = &e
			return nil
		})
		return err
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}

	for _, a := range accounts {
		if _, ok := lastSeq[a]; !ok {
			return nil, herald.Errorf(herald.ENOTFOUND, "account %q not found", a)
		}
	}
	accepted, nextSeq := decide(batches, lastSeq, known)

	// Seqs are known now: build the bodies and the rows.
	n := len(accepted)
	var (
		cAccount    = make([]string, n)
		cSeq        = make([]int64, n)
		cID         = make([]string, n)
		cCategory   = make([]string, n)
		cType       = make([]string, n)
		cStatus     = make([]string, n)
		cLifecycle  = make([]string, n)
		cCustomer   = make([]string, n)
		cAgent      = make([]string, n)
		cSession    = make([]string, n)
		cPrimary    = make([]string, n)
		cOrigin     = make([]string, n)
		cOccurredAt = make([]time.Time, n)
		cReceivedAt = make([]time.Time, n)
		cHash       = make([]string, n)
		cBody       = make([][]byte, n)
		stored      = make([]*herald.Event, n)
	)
	for i, a := range accepted {
		stored[i] = a.event
	}
	for i, a := range accepted {
		e := a.event
		body, err := herald.MarshalEvent(e)
		if err != nil {
			return stored, fmt.Errorf("encode event %s: %w", e.ID, err)
		}
		e.Body = body
		cAccount[i], cSeq[i], cID[i] = a.account, e.Seq, e.ID
		cCategory[i], cType[i], cStatus[i], cLifecycle[i] = e.Category, e.Type, e.EventStatus, e.EventLifecycleID
		cCustomer[i], cAgent[i], cSession[i], cPrimary[i] = e.CoreCustomerID, e.AgentID, e.SessionID, e.PrimaryID
		cOrigin[i], cOccurredAt[i], cReceivedAt[i] = e.Origin, e.OccurredAt, e.ReceivedAt
		cHash[i], cBody[i] = e.Hash, body
	}

	// Round trip 2: insert, move last_seq, commit. If a statement fails,
	// the server skips the rest, COMMIT included, and the caller rolls
	// back. The caller's cancellation no longer applies: cancelling a
	// COMMIT in flight would leave its outcome unknown, and an error must
	// mean that nothing was stored.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	b = &pgx.Batch{}
	if n > 0 {
		b.Queue(insertEventsSQL, cAccount, cSeq, cID, cCategory, cType, cStatus, cLifecycle,
			cCustomer, cAgent, cSession, cPrimary, cOrigin, cOccurredAt, cReceivedAt, cHash, cBody)
		updAccounts := slices.Sorted(maps.Keys(nextSeq))
		updSeqs := make([]int64, len(updAccounts))
		for i, a := range updAccounts {
			updSeqs[i] = nextSeq[a]
		}
		b.Queue(updateLastSeqSQL, updAccounts, updSeqs)
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return stored, err
	}
	return stored, nil
}

// commitTimeout bounds the last round trip of AppendEvents, which the
// caller cannot cancel.
const commitTimeout = 30 * time.Second

// acceptedEvent is an event that AppendEvents will insert.
type acceptedEvent struct {
	account string
	event   *herald.Event
}

// decide fills the results of every batch, given each account's last seq
// and the events already stored, and returns the events to insert, with Seq
// set, and each account's new last seq. Events are judged in call order, so
// a later copy of an id is a duplicate (or a conflict) of the first one.
func decide(batches []*herald.AppendBatch, lastSeq map[string]int64, known map[eventKey]*knownEvent) ([]acceptedEvent, map[string]int64) {
	var (
		accepted []acceptedEvent
		// dups are results of events that duplicate one accepted earlier in
		// the call, to be given its seq once seqs are assigned.
		dups []struct{ res, of *herald.AppendResult }
	)
	for _, b := range batches {
		if len(b.Events) == 0 {
			continue
		}
		var (
			added      []eventKey
			mark       = len(accepted)
			dupsMark   = len(dups)
			firstError = -1
		)
		for i, e := range b.Events {
			r := &b.Results[i]
			if err := checkText(e); err != nil {
				r.Err = err
			} else if prev, ok := known[eventKey{b.AccountID, e.ID}]; !ok {
				k := eventKey{b.AccountID, e.ID}
				known[k] = &knownEvent{hash: e.Hash, res: r}
				added = append(added, k)
				accepted = append(accepted, acceptedEvent{account: b.AccountID, event: e})
			} else if prev.hash != e.Hash {
				r.Err = herald.Errorf(herald.ECONFLICT, "event id %q is already taken by an event with different content", e.ID)
			} else {
				r.Duplicate = true
				if prev.res != nil {
					dups = append(dups, struct{ res, of *herald.AppendResult }{r, prev.res})
				} else {
					r.Seq, r.ReceivedAt = prev.seq, prev.receivedAt
				}
			}
			if r.Err != nil && firstError < 0 {
				firstError = i
			}
		}
		if b.Atomic && firstError >= 0 {
			// All or none: forget what this batch added.
			for _, k := range added {
				delete(known, k)
			}
			accepted, dups = accepted[:mark], dups[:dupsMark]
			failed := herald.Errorf(herald.ECONFLICT, "not stored: event %d of this atomic batch failed: %s",
				firstError, herald.ErrorMessage(b.Results[firstError].Err))
			for i := range b.Results {
				if b.Results[i].Err == nil {
					b.Results[i] = herald.AppendResult{Err: failed}
				}
			}
		}
	}

	next := map[string]int64{}
	for _, a := range accepted {
		seq, ok := next[a.account]
		if !ok {
			seq = lastSeq[a.account]
		}
		seq++
		next[a.account] = seq
		a.event.Seq = seq
	}
	// Results of accepted events, then of their duplicates.
	for _, b := range batches {
		for i := range b.Results {
			r := &b.Results[i]
			if r.Err == nil && !r.Duplicate {
				r.Seq, r.ReceivedAt = b.Events[i].Seq, b.Events[i].ReceivedAt
			}
		}
	}
	for _, d := range dups {
		d.res.Seq, d.res.ReceivedAt = d.of.Seq, d.of.ReceivedAt
	}
	return accepted, next
}

// checkText returns an EINVALID error if a field stored in a text column
// holds what PostgreSQL's text refuses: the NUL character or invalid UTF-8.
// Such an event would otherwise fail the whole transaction, and with it
// the other requests that share the commit.
func checkText(e *herald.Event) error {
	return checkFields("/id", e.ID, "/category", e.Category, "/type", e.Type,
		"/eventStatus", e.EventStatus, "/eventLifecycleId", e.EventLifecycleID,
		"/coreCustomerId", e.CoreCustomerID, "/agentId", e.AgentID,
		"/sessionId", e.SessionID, "/primaryId", e.PrimaryID,
		"/origin", e.Origin, "/hash", e.Hash)
}

// textOK reports whether PostgreSQL can store s as text.
func textOK(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

// rollback ends a transaction left open on conn by a failed call. The
// call's context may be done, so it gets its own. Should rollback fail,
// the pool discards the connection when it is released.
func rollback(conn *pgxpool.Conn) {
	if conn.Conn().IsClosed() || conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, "ROLLBACK")
}

// FindEventByID returns the account's event id, or ENOTFOUND.
func (s *Store) FindEventByID(ctx context.Context, accountID, id string) (*herald.Event, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "event %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return nil, notFound // could not have been stored
	}
	var (
		body []byte
		hash string
	)
	err := s.pool.QueryRow(ctx, `SELECT body, hash FROM events WHERE account_id = $1 AND id = $2`, accountID, id).
		Scan(&body, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("find event %s: %w", id, err)
	}
	e, err := decodeEvent(accountID, body, hash)
	if err != nil {
		return nil, fmt.Errorf("find event %s: %w", id, err)
	}
	return e, nil
}

// FindEvents returns up to f.Limit of the account's events that match f,
// ordered by seq.
func (s *Store) FindEvents(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	var (
		sql  strings.Builder
		args = []any{accountID}
		none = !textOK(accountID) // a value no stored event can have
	)
	sql.WriteString(`SELECT seq, id, body, hash FROM events WHERE account_id = $1`)
	where := func(cond string, v any) {
		args = append(args, v)
		sql.WriteString(" AND ")
		sql.WriteString(cond)
		sql.WriteString(" $")
		sql.WriteString(strconv.Itoa(len(args)))
	}
	for _, c := range []struct{ column, value string }{
		{"category", f.Category}, {"type", f.Type}, {"event_status", f.EventStatus},
		{"event_lifecycle_id", f.EventLifecycleID}, {"core_customer_id", f.CoreCustomerID},
		{"agent_id", f.AgentID}, {"session_id", f.SessionID}, {"primary_id", f.PrimaryID},
		{"origin", f.Origin},
	} {
		if c.value != "" {
			none = none || !textOK(c.value)
			where(c.column+" =", c.value)
		}
	}
	if none {
		return []*herald.Event{}, nil
	}
	if !f.OccurredAfter.IsZero() {
		where("occurred_at >=", f.OccurredAfter)
	}
	if !f.OccurredBefore.IsZero() {
		where("occurred_at <", f.OccurredBefore)
	}
	if f.AfterSeq > 0 {
		where("seq >", f.AfterSeq)
	}
	args = append(args, f.Limit)
	sql.WriteString(" ORDER BY seq LIMIT $" + strconv.Itoa(len(args)))

	rows, err := s.pool.Query(ctx, sql.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("find events: %w", err)
	}
	events := make([]*herald.Event, 0, min(f.Limit, 128))
	var (
		seq      int64
		id, hash string
		body     []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&seq, &id, &body, &hash}, func() error {
		if f.BodiesOnly {
			events = append(events, &herald.Event{Seq: seq, ID: id, AccountID: accountID, Body: body})
			return nil
		}
		e, err := decodeEvent(accountID, body, hash)
		if err != nil {
			return err
		}
		events = append(events, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find events: %w", err)
	}
	return events, nil
}

// decodeEvent returns the event stored as body.
func decodeEvent(accountID string, body []byte, hash string) (*herald.Event, error) {
	e := &herald.Event{}
	if err := json.Unmarshal(body, e); err != nil {
		return nil, fmt.Errorf("decode stored event: %w", err)
	}
	e.AccountID, e.Hash, e.Body = accountID, hash, body
	return e, nil
}
