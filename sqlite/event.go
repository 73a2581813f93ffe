package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

const insertEvent = `INSERT INTO events (
	account_id, seq, id, category, type, event_status, event_lifecycle_id, core_customer_id,
	agent_id, session_id, primary_id, origin, occurred_at, received_at, hash, body
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// blockBits sets the size of the blocks of event_blocks: 1 << blockBits
// seqs.
const blockBits = 10

// blockKey names one block of one account's seqs.
type blockKey struct {
	accountID string
	block     int64
}

// occurredRange is the span of occurred_at (unix micros) in one block.
type occurredRange struct{ min, max int64 }

// storedEvent is what deciding about a resent id needs of an event that
// is already stored.
type storedEvent struct {
	seq        int64
	receivedAt time.Time
	hash       string
}

// Statements of AppendEvents, prepared once on the write connection: the
// SQL text is parsed at Open, not at every commit.
const (
	selectLastSeq = "SELECT last_seq FROM accounts WHERE id = ?"
	updateLastSeq = "UPDATE accounts SET last_seq = ? WHERE id = ?"
	selectStored  = `SELECT id, seq, received_at, hash FROM events
		WHERE account_id = ? AND id IN (SELECT value FROM json_each(?))`
	upsertBlock = `INSERT INTO event_blocks (account_id, block, min_occurred_at, max_occurred_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (account_id, block) DO UPDATE SET
			min_occurred_at = min(min_occurred_at, excluded.min_occurred_at),
			max_occurred_at = max(max_occurred_at, excluded.max_occurred_at)`
)

// writeStmts are the prepared statements of AppendEvents.
type writeStmts struct {
	lastSeq, updateSeq, stored, insert, block *sql.Stmt
}

func prepareWrites(ctx context.Context, db *sql.DB) (*writeStmts, error) {
	var w writeStmts
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&w.lastSeq, selectLastSeq}, {&w.updateSeq, updateLastSeq}, {&w.stored, selectStored},
		{&w.insert, insertEvent}, {&w.block, upsertBlock},
	} {
		stmt, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			w.close()
			return nil, err
		}
		*p.stmt = stmt
	}
	return &w, nil
}

func (w *writeStmts) close() {
	for _, stmt := range []*sql.Stmt{w.lastSeq, w.updateSeq, w.stored, w.insert, w.block} {
		if stmt != nil {
			stmt.Close()
		}
	}
}

// AppendEvents stores the events of all batches in one transaction: see
// herald.EventService. Stored events get Seq, AccountID and Body set.
func (s *Store) AppendEvents(ctx context.Context, batches []*herald.AppendBatch) (err error) {
	for _, b := range batches {
		b.Results = make([]herald.AppendResult, len(b.Events))
		for i, e := range b.Events {
			if e == nil || e.ID == "" || e.Hash == "" {
				return fmt.Errorf("append events: event %d of account %s is not complete", i, b.AccountID)
			}
		}
	}
	defer func() {
		if err != nil {
			// Nothing was stored: leave no result that says otherwise.
			for _, b := range batches {
				b.Results = nil
			}
		}
	}()

	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	defer tx.Rollback()

	a := &appender{
		tx:      tx,
		stmts:   s.writes,
		lastSeq: map[string]int64{},
		stored:  map[string]map[string]storedEvent{},
		blocks:  map[blockKey]occurredRange{},
	}
	if err := a.lookUp(ctx, batches); err != nil {
		return err
	}
	for _, b := range batches {
		if err := a.append(ctx, b); err != nil {
			return err
		}
	}
	if err := a.finish(ctx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// appender is one AppendEvents transaction under way.
type appender struct {
	tx      *sql.Tx
	stmts   *writeStmts
	lastSeq map[string]int64 // by account, as this transaction moved it
	// stored holds, by account and id, the events with an id of this call
	// that are stored already or are being stored by it.
	stored map[string]map[string]storedEvent
	blocks map[blockKey]occurredRange
}

// lookUp reads, with one query per account, each account's last seq and
// the stored events that have the ids of the call's events.
func (a *appender) lookUp(ctx context.Context, batches []*herald.AppendBatch) error {
	ids := map[string][]string{}
	var accounts []string
	for _, b := range batches {
		if _, ok := ids[b.AccountID]; !ok {
			accounts = append(accounts, b.AccountID)
		}
		for _, e := range b.Events {
			ids[b.AccountID] = append(ids[b.AccountID], e.ID)
		}
	}
	lastSeq, stored := a.tx.StmtContext(ctx, a.stmts.lastSeq), a.tx.StmtContext(ctx, a.stmts.stored)
	for _, acct := range accounts {
		var last int64
		err := lastSeq.QueryRowContext(ctx, acct).Scan(&last)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return herald.Errorf(herald.ENOTFOUND, "account %q not found", acct)
		case err != nil:
			return fmt.Errorf("append events to %s: %w", acct, err)
		}
		a.lastSeq[acct] = last
		found, err := findStored(ctx, stored, acct, ids[acct])
		if err != nil {
			return fmt.Errorf("append events to %s: %w", acct, err)
		}
		a.stored[acct] = found
	}
	return nil
}

// append decides about b's events and inserts those to store.
func (a *appender) append(ctx context.Context, b *herald.AppendBatch) error {
	stored := a.stored[b.AccountID]
	a.lastSeq[b.AccountID] = decide(b, stored, a.lastSeq[b.AccountID])

	insert := a.tx.StmtContext(ctx, a.stmts.insert)
	var err error
	for i, e := range b.Events {
		r := b.Results[i]
		if r.Err != nil || r.Duplicate {
			continue
		}
		// Later batches of this call see this event as stored.
		stored[e.ID] = storedEvent{seq: r.Seq, receivedAt: r.ReceivedAt, hash: e.Hash}
		e.Seq, e.AccountID = r.Seq, b.AccountID
		if e.Body, err = herald.MarshalEvent(e); err != nil {
			return fmt.Errorf("append event %s to %s: %w", e.ID, b.AccountID, err)
		}
		if _, err := insert.ExecContext(ctx,
			b.AccountID, e.Seq, e.ID, e.Category, e.Type, nullIfEmpty(e.EventStatus),
			nullIfEmpty(e.EventLifecycleID), nullIfEmpty(e.CoreCustomerID), nullIfEmpty(e.AgentID),
			nullIfEmpty(e.SessionID), nullIfEmpty(e.PrimaryID), e.Origin, micros(e.OccurredAt),
			micros(e.ReceivedAt), e.Hash, e.Body,
		); err != nil {
			return fmt.Errorf("append event %s to %s: %w", e.ID, b.AccountID, err)
		}
		k, at := blockKey{b.AccountID, e.Seq >> blockBits}, micros(e.OccurredAt)
		if r, ok := a.blocks[k]; ok {
			a.blocks[k] = occurredRange{min(r.min, at), max(r.max, at)}
		} else {
			a.blocks[k] = occurredRange{at, at}
		}
	}
	return nil
}

// finish records each account's last seq and the occurred_at range of the
// blocks that received events.
func (a *appender) finish(ctx context.Context) error {
	update := a.tx.StmtContext(ctx, a.stmts.updateSeq)
	for accountID, last := range a.lastSeq {
		if _, err := update.ExecContext(ctx, last, accountID); err != nil {
			return fmt.Errorf("append events to %s: %w", accountID, err)
		}
	}
	block := a.tx.StmtContext(ctx, a.stmts.block)
	for k, r := range a.blocks {
		if _, err := block.ExecContext(ctx, k.accountID, k.block, r.min, r.max); err != nil {
			return fmt.Errorf("append events to %s: %w", k.accountID, err)
		}
	}
	return nil
}

// findStored returns the stored events of the account that have one of
// the ids, by id, in one query.
func findStored(ctx context.Context, stmt *sql.Stmt, accountID string, ids []string) (map[string]storedEvent, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := stmt.QueryContext(ctx, accountID, list)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := map[string]storedEvent{}
	for rows.Next() {
		var id string
		var se storedEvent
		var receivedAt int64
		if err := rows.Scan(&id, &se.seq, &receivedAt, &se.hash); err != nil {
			return nil, err
		}
		se.receivedAt = fromMicros(receivedAt)
		found[id] = se
	}
	return found, rows.Err()
}

// decide fills b.Results given the events already stored and the
// account's last seq, and returns the last seq after b. It is the rule of
// herald.AppendResult: an id stored with the same hash is a duplicate, with
// a different hash a conflict; an atomic batch with a conflict stores
// nothing and takes no seq.
func decide(b *herald.AppendBatch, stored map[string]storedEvent, last int64) int64 {
	next := last
	failed := -1
	batch := map[string]storedEvent{} // new events of b, by id
	for i, e := range b.Events {
		prior, ok := stored[e.ID]
		if !ok {
			prior, ok = batch[e.ID]
		}
		switch {
		case ok && prior.hash == e.Hash:
			b.Results[i] = herald.AppendResult{Seq: prior.seq, ReceivedAt: prior.receivedAt, Duplicate: true}
		case ok:
			b.Results[i] = herald.AppendResult{Err: herald.Errorf(herald.ECONFLICT,
				"event id %q is taken by an event with different content", e.ID)}
			if failed < 0 {
				failed = i
			}
		default:
			next++
			batch[e.ID] = storedEvent{seq: next, receivedAt: e.ReceivedAt, hash: e.Hash}
			b.Results[i] = herald.AppendResult{Seq: next, ReceivedAt: e.ReceivedAt}
		}
	}
	if !b.Atomic || failed < 0 {
		return next
	}
	for i, e := range b.Events {
		if b.Results[i].Err == nil {
			b.Results[i] = herald.AppendResult{Err: herald.Errorf(herald.ECONFLICT,
				"event %q not stored: the batch is atomic and event %d (id %q) failed", e.ID, failed, b.Events[failed].ID)}
		}
	}
	return last
}

// FindEventByID returns ENOTFOUND if the account has no such event.
func (s *Store) FindEventByID(ctx context.Context, accountID, id string) (*herald.Event, error) {
	var body []byte
	err := s.read.QueryRowContext(ctx, "SELECT body FROM events WHERE account_id = ? AND id = ?", accountID, id).Scan(&body)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "event %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("find event %s: %w", id, err)
	}
	e, err := decodeEvent(accountID, body)
	if err != nil {
		return nil, fmt.Errorf("find event %s: %w", id, err)
	}
	return e, nil
}

// filterColumns maps each string field of a filter to its column. Column
// names are constants; values are always parameters.
func filterColumns(f herald.EventFilter) []struct{ column, value string } {
	return []struct{ column, value string }{
		{"category", f.Category},
		{"type", f.Type},
		{"event_status", f.EventStatus},
		{"event_lifecycle_id", f.EventLifecycleID},
		{"core_customer_id", f.CoreCustomerID},
		{"agent_id", f.AgentID},
		{"session_id", f.SessionID},
		{"primary_id", f.PrimaryID},
		{"origin", f.Origin},
	}
}

// FindEvents returns up to f.Limit events of the account, by seq.
func (s *Store) FindEvents(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	// One read transaction: every query below sees the same snapshot.
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("find events: %w", err)
	}
	defer tx.Rollback()

	events := []*herald.Event{}
	if f.OccurredAfter.IsZero() && f.OccurredBefore.IsZero() {
		events, err = findEventsIn(ctx, tx, accountID, f, 0, 0, events)
	} else {
		events, err = findEventsByBlocks(ctx, tx, accountID, f, events)
	}
	if err != nil {
		return nil, fmt.Errorf("find events: %w", err)
	}
	return events, nil
}

// findEventsByBlocks answers a filter on occurred_at from the blocks of
// seqs whose range of occurred_at overlaps the filter's, a run of
// consecutive blocks at a time, until f.Limit events are found.
func findEventsByBlocks(ctx context.Context, tx *sql.Tx, accountID string, f herald.EventFilter, events []*herald.Event) ([]*herald.Event, error) {
	q := "SELECT block FROM event_blocks WHERE account_id = ? AND block >= ?"
	args := []any{accountID, 0}
	if !f.OccurredAfter.IsZero() {
		q += " AND max_occurred_at >= ?"
		args = append(args, micros(f.OccurredAfter))
	}
	if !f.OccurredBefore.IsZero() {
		q += " AND min_occurred_at < ?"
		args = append(args, micros(f.OccurredBefore))
	}
	q += " ORDER BY block LIMIT 256"

	from := (f.AfterSeq + 1) >> blockBits
	for len(events) < f.Limit {
		args[1] = from
		blocks, err := queryInts(ctx, tx, q, args...)
		if err != nil || len(blocks) == 0 {
			return events, err
		}
		for i := 0; i < len(blocks) && len(events) < f.Limit; {
			j := i + 1
			for j < len(blocks) && blocks[j] == blocks[j-1]+1 {
				j++
			}
			lo, hi := blocks[i]<<blockBits, (blocks[j-1]+1)<<blockBits
			if events, err = findEventsIn(ctx, tx, accountID, f, lo, hi, events); err != nil {
				return nil, err
			}
			i = j
		}
		from = blocks[len(blocks)-1] + 1
	}
	return events, nil
}

// findEventsIn appends to events those that match f, with seqs in
// [lo, hi) unless hi is 0, until there are f.Limit.
func findEventsIn(ctx context.Context, tx *sql.Tx, accountID string, f herald.EventFilter, lo, hi int64, events []*herald.Event) ([]*herald.Event, error) {
	query, args := findEventsQuery(accountID, f, lo, hi, f.Limit-len(events))
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var id string
		var body []byte
		if err := rows.Scan(&seq, &id, &body); err != nil {
			return nil, err
		}
		if f.BodiesOnly {
			events = append(events, &herald.Event{Seq: seq, ID: id, AccountID: accountID, Body: body})
			continue
		}
		e, err := decodeEvent(accountID, body)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

// findEventsQuery returns the SQL and parameters that select the bodies of
// up to limit of the account's events that match f and, unless hi is 0,
// have seqs in [lo, hi); by seq.
func findEventsQuery(accountID string, f herald.EventFilter, lo, hi int64, limit int) (string, []any) {
	var q strings.Builder
	q.WriteString("SELECT seq, id, body FROM events WHERE account_id = ?")
	args := []any{accountID}
	for _, c := range filterColumns(f) {
		if c.value != "" {
			q.WriteString(" AND " + c.column + " = ?")
			args = append(args, c.value)
		}
	}
	if !f.OccurredAfter.IsZero() {
		q.WriteString(" AND occurred_at >= ?")
		args = append(args, micros(f.OccurredAfter))
	}
	if !f.OccurredBefore.IsZero() {
		q.WriteString(" AND occurred_at < ?")
		args = append(args, micros(f.OccurredBefore))
	}
	if after := max(f.AfterSeq, lo-1); after > 0 {
		q.WriteString(" AND seq > ?")
		args = append(args, after)
	}
	if hi > 0 {
		q.WriteString(" AND seq < ?")
		args = append(args, hi)
	}
	q.WriteString(" ORDER BY seq LIMIT ?")
	args = append(args, limit)
	return q.String(), args
}

// queryInts returns the one integer column of a query's rows.
func queryInts(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// decodeEvent returns the event stored as body.
func decodeEvent(accountID string, body []byte) (*herald.Event, error) {
	e := &herald.Event{}
	if err := json.Unmarshal(body, e); err != nil {
		return nil, fmt.Errorf("decode stored event: %w", err)
	}
	e.AccountID, e.Body = accountID, body
	return e, nil
}
