package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/heraldhq/herald"
)

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

// Statements of AppendEvents, prepared once on the write connection: the
// SQL text is parsed at Open, not at every commit. The lookups take a JSON
// array of ids, so that each is one query per account whatever the number
// of ids.
const (
	selectAccountState = "SELECT last_seq, audit_head, settings FROM accounts WHERE id = ?"
	updateLastSeq      = "UPDATE accounts SET last_seq = ? WHERE id = ?"
	updateAuditHead    = "UPDATE accounts SET audit_head = ? WHERE id = ?"
	selectStored       = `SELECT id, seq, received_at, hash, session_id FROM events
		WHERE account_id = ? AND id IN (SELECT value FROM json_each(?))`
	selectLifecyclesIn = "SELECT " + lifecycleColumns + ` FROM lifecycles
		WHERE account_id = ? AND id IN (SELECT value FROM json_each(?))`
	selectProfilesIn = "SELECT " + profileColumns + ` FROM profiles
		WHERE account_id = ? AND id IN (SELECT value FROM json_each(?))`
	selectSessionsIn = "SELECT " + sessionColumns + ` FROM sessions
		WHERE account_id = ? AND id IN (SELECT value FROM json_each(?))`
	// The open visit of each entity, from the index of open visits. No
	// ORDER BY: SQLite would rather read every visit of the account in
	// first_seq order than sort the few it finds.
	selectOpenVisitsIn = "SELECT " + visitColumns + ` FROM visits
		WHERE account_id = ? AND entity_id IN (SELECT value FROM json_each(?)) AND ended_at IS NULL`
	insertEvent = `INSERT INTO events (
		account_id, seq, id, category, type, event_status, event_lifecycle_id, core_customer_id,
		agent_id, session_id, primary_id, origin, occurred_at, received_at, hash, body, entity_id
	) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	upsertBlock = `INSERT INTO event_blocks (account_id, block, min_occurred_at, max_occurred_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (account_id, block) DO UPDATE SET
			min_occurred_at = min(min_occurred_at, excluded.min_occurred_at),
			max_occurred_at = max(max_occurred_at, excluded.max_occurred_at)`
)

// writeStmts are the prepared statements of AppendEvents.
type writeStmts struct {
	account, updateSeq, updateHead, stored, lifecycles, profiles, sessions, visits *sql.Stmt
	insert, lifecycle, profile, session, openSession, visit, openVisit, block      *sql.Stmt
}

func (w *writeStmts) all() []**sql.Stmt {
	return []**sql.Stmt{
		&w.account, &w.updateSeq, &w.updateHead, &w.stored, &w.lifecycles, &w.profiles, &w.sessions, &w.visits,
		&w.insert, &w.lifecycle, &w.profile, &w.session, &w.openSession, &w.visit, &w.openVisit, &w.block,
	}
}

func prepareWrites(ctx context.Context, db *sql.DB) (*writeStmts, error) {
	w := &writeStmts{}
	texts := []string{
		selectAccountState, updateLastSeq, updateAuditHead, selectStored, selectLifecyclesIn, selectProfilesIn,
		selectSessionsIn, selectOpenVisitsIn,
		insertEvent, upsertLifecycle, upsertProfile, upsertSession, upsertOpenSession, upsertVisit, upsertOpenVisit,
		upsertBlock,
	}
	for i, stmt := range w.all() {
		var err error
		if *stmt, err = db.PrepareContext(ctx, texts[i]); err != nil {
			w.close()
			return nil, err
		}
	}
	return w, nil
}

func (w *writeStmts) close() {
	for _, stmt := range w.all() {
		if *stmt != nil {
			(*stmt).Close()
		}
	}
}

// AppendEvents stores the events of all batches, and the lifecycles,
// profiles, sessions and visits they change, with the system events they
// cause, in one transaction: see herald.EventService and
// herald.PlanAppend. Stored events get Seq, AccountID and Body set.
func (s *Store) AppendEvents(ctx context.Context, batches []*herald.AppendBatch) (err error) {
	for bi, b := range batches {
		if b == nil {
			return fmt.Errorf("append events: batch %d is nil", bi)
		}
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
	if err := s.appendInTx(ctx, tx, batches); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// appendInTx is AppendEvents inside tx, a write transaction: the one path
// by which events, API events and system events alike, are stored.
func (s *Store) appendInTx(ctx context.Context, tx *sql.Tx, batches []*herald.AppendBatch) error {
	st, err := s.appendState(ctx, tx, herald.KeysOf(batches))
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	plan, err := herald.PlanAppend(batches, st, nil)
	if err != nil {
		return err
	}
	if err := s.writePlan(ctx, tx, plan); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// recordChange appends, inside tx, the system events of a change made
// through the API, by the actor of ctx. A system event that cannot be
// stored fails the change.
func (s *Store) recordChange(ctx context.Context, tx *sql.Tx, accountID string, events ...*herald.Event) error {
	b := &herald.AppendBatch{AccountID: accountID, Events: events, Atomic: true, By: herald.ActorFrom(ctx)}
	if err := s.appendInTx(ctx, tx, []*herald.AppendBatch{b}); err != nil {
		return err
	}
	for i, r := range b.Results {
		if r.Err != nil {
			return fmt.Errorf("record %s %s: %w", events[i].Category, events[i].Type, r.Err)
		}
	}
	return nil
}

// appendState reads what PlanAppend needs to know about k, with one query
// per account and kind of thing, and none for a kind with no keys.
func (s *Store) appendState(ctx context.Context, tx *sql.Tx, k herald.AppendKeys) (*herald.AppendState, error) {
	st := &herald.AppendState{
		LastSeq:    map[string]int64{},
		Stored:     map[herald.Ref]herald.StoredEvent{},
		Lifecycles: map[herald.Ref]*herald.Lifecycle{},
		Profiles:   map[herald.Ref]*herald.Profile{},
		Sessions:   map[herald.Ref]*herald.Session{},
		Visits:     map[herald.Ref]*herald.Visit{},
		Settings:   map[string]*herald.Settings{},
		AuditHead:  map[string]string{},
	}
	events, lifecycles, profiles := idsByAccount(k.Events), idsByAccount(k.Lifecycles), idsByAccount(k.Profiles)
	sessions, visits := idsByAccount(k.Sessions), idsByAccount(k.Visits)
	account := tx.StmtContext(ctx, s.writes.account)
	for _, acct := range k.Accounts {
		var last int64
		var head, settings sql.NullString
		err := account.QueryRowContext(ctx, acct).Scan(&last, &head, &settings)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue // PlanAppend refuses the call
		case err != nil:
			return nil, fmt.Errorf("read account %s: %w", acct, err)
		}
		st.LastSeq[acct] = last
		if head.Valid {
			st.AuditHead[acct] = head.String
		}
		if settings.Valid {
			set, err := herald.DecodeSettings([]byte(settings.String))
			if err != nil {
				return nil, fmt.Errorf("decode settings of %s: %w", acct, err)
			}
			st.Settings[acct] = set
		}

		err = queryIn(ctx, tx.StmtContext(ctx, s.writes.stored), acct, events[acct], func(rows *sql.Rows) error {
			var id string
			var se herald.StoredEvent
			var receivedAt int64
			var sessionID sql.NullString
			if err := rows.Scan(&id, &se.Seq, &receivedAt, &se.Hash, &sessionID); err != nil {
				return err
			}
			se.ReceivedAt, se.SessionID = fromMicros(receivedAt), sessionID.String
			st.Stored[herald.Ref{AccountID: acct, ID: id}] = se
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read stored events of %s: %w", acct, err)
		}
		err = queryIn(ctx, tx.StmtContext(ctx, s.writes.lifecycles), acct, lifecycles[acct], func(rows *sql.Rows) error {
			l, err := scanLifecycle(rows, acct)
			if err == nil {
				st.Lifecycles[herald.Ref{AccountID: acct, ID: l.ID}] = l
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("read lifecycles of %s: %w", acct, err)
		}
		err = queryIn(ctx, tx.StmtContext(ctx, s.writes.profiles), acct, profiles[acct], func(rows *sql.Rows) error {
			p, err := scanProfile(rows, acct)
			if err == nil {
				st.Profiles[herald.Ref{AccountID: acct, ID: p.ID}] = p
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("read profiles of %s: %w", acct, err)
		}
		err = queryIn(ctx, tx.StmtContext(ctx, s.writes.sessions), acct, sessions[acct], func(rows *sql.Rows) error {
			se, err := scanSession(rows, acct)
			if err == nil {
				st.Sessions[herald.Ref{AccountID: acct, ID: se.ID}] = se
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("read sessions of %s: %w", acct, err)
		}
		err = queryIn(ctx, tx.StmtContext(ctx, s.writes.visits), acct, visits[acct], func(rows *sql.Rows) error {
			v, err := scanVisit(rows, acct)
			if err != nil {
				return err
			}
			// Should an entity have two, the later one is its visit.
			ref := herald.Ref{AccountID: acct, ID: v.EntityID}
			if prev := st.Visits[ref]; prev == nil || prev.FirstSeq < v.FirstSeq {
				st.Visits[ref] = v
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read open visits of %s: %w", acct, err)
		}
	}
	return st, nil
}

// idsByAccount groups the ids of refs by account.
func idsByAccount(refs []herald.Ref) map[string][]string {
	ids := map[string][]string{}
	for _, r := range refs {
		ids[r.AccountID] = append(ids[r.AccountID], r.ID)
	}
	return ids
}

// queryIn runs stmt, one of the lookups that take an account and a JSON
// array of ids, and calls scan for each row. No ids, no query.
func queryIn(ctx context.Context, stmt *sql.Stmt, accountID string, ids []string, scan func(*sql.Rows) error) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	rows, err := stmt.QueryContext(ctx, accountID, string(list))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// writePlan stores what PlanAppend decided: the new events, the
// lifecycles, profiles, sessions and visits they changed, each account's
// last seq and audit head, and the occurred_at range of the blocks that
// received events.
func (s *Store) writePlan(ctx context.Context, tx *sql.Tx, plan *herald.AppendPlan) error {
	insert := tx.StmtContext(ctx, s.writes.insert)
	blocks := map[blockKey]occurredRange{}
	for _, e := range plan.Events {
		var err error
		if e.Body, err = herald.MarshalEvent(e); err != nil {
			return fmt.Errorf("encode event %s: %w", e.ID, err)
		}
		if _, err := insert.ExecContext(ctx,
			e.AccountID, e.Seq, e.ID, e.Category, e.Type, nullIfEmpty(e.EventStatus),
			nullIfEmpty(e.EventLifecycleID), nullIfEmpty(e.CoreCustomerID), nullIfEmpty(e.AgentID),
			nullIfEmpty(e.SessionID), nullIfEmpty(e.PrimaryID), e.Origin, micros(e.OccurredAt),
			micros(e.ReceivedAt), e.Hash, e.Body, nullIfEmpty(e.EntityID()),
		); err != nil {
			return fmt.Errorf("insert event %s of %s: %w", e.ID, e.AccountID, err)
		}
		k, at := blockKey{e.AccountID, e.Seq >> blockBits}, micros(e.OccurredAt)
		if r, ok := blocks[k]; ok {
			blocks[k] = occurredRange{min(r.min, at), max(r.max, at)}
		} else {
			blocks[k] = occurredRange{at, at}
		}
	}
	upsert := tx.StmtContext(ctx, s.writes.lifecycle)
	for _, l := range plan.Lifecycles {
		args, err := lifecycleArgs(l)
		if err == nil {
			_, err = upsert.ExecContext(ctx, args...)
		}
		if err != nil {
			return fmt.Errorf("store lifecycle %s of %s: %w", l.ID, l.AccountID, err)
		}
	}
	upsert = tx.StmtContext(ctx, s.writes.profile)
	for _, p := range plan.Profiles {
		args, err := profileArgs(p)
		if err == nil {
			_, err = upsert.ExecContext(ctx, args...)
		}
		if err != nil {
			return fmt.Errorf("store profile %s of %s: %w", p.ID, p.AccountID, err)
		}
	}
	if len(plan.Sessions) > 0 {
		ended, open := tx.StmtContext(ctx, s.writes.session), tx.StmtContext(ctx, s.writes.openSession)
		for _, se := range plan.Sessions {
			upsert := ended
			if se.Open() {
				upsert = open
			}
			if _, err := upsert.ExecContext(ctx, sessionArgs(se)...); err != nil {
				return fmt.Errorf("store session %s of %s: %w", se.ID, se.AccountID, err)
			}
		}
	}
	// Ended visits come first: an entity's next visit may begin in the
	// same commit.
	if len(plan.Visits) > 0 {
		ended, open := tx.StmtContext(ctx, s.writes.visit), tx.StmtContext(ctx, s.writes.openVisit)
		for _, v := range plan.Visits {
			upsert := ended
			if v.Open() {
				upsert = open
			}
			if _, err := upsert.ExecContext(ctx, visitArgs(v)...); err != nil {
				return fmt.Errorf("store visit %s of %s: %w", v.ID, v.AccountID, err)
			}
		}
	}
	update := tx.StmtContext(ctx, s.writes.updateSeq)
	for acct, last := range plan.LastSeq {
		if _, err := update.ExecContext(ctx, last, acct); err != nil {
			return fmt.Errorf("move last seq of %s: %w", acct, err)
		}
	}
	update = tx.StmtContext(ctx, s.writes.updateHead)
	for acct, head := range plan.AuditHead {
		if _, err := update.ExecContext(ctx, head, acct); err != nil {
			return fmt.Errorf("move audit head of %s: %w", acct, err)
		}
	}
	block := tx.StmtContext(ctx, s.writes.block)
	for k, r := range blocks {
		if _, err := block.ExecContext(ctx, k.accountID, k.block, r.min, r.max); err != nil {
			return fmt.Errorf("update block %d of %s: %w", k.block, k.accountID, err)
		}
	}
	return nil
}

// FindEventByID returns ENOTFOUND if the account has no such event.
func (s *Store) FindEventByID(ctx context.Context, accountID, id string) (*herald.Event, error) {
	var body []byte
	var hash string
	err := s.read.QueryRowContext(ctx, "SELECT body, hash FROM events WHERE account_id = ? AND id = ?", accountID, id).Scan(&body, &hash)
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
	e.Hash = hash
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
		// Implied by the line above, and answered by an index (see
		// migration 0002).
		{"entity_id", f.CoreCustomerID},
		{"entity_id", f.EntityID},
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
		var id, hash string
		var body []byte
		if err := rows.Scan(&seq, &id, &body, &hash); err != nil {
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
		e.Hash = hash
		events = append(events, e)
	}
	return events, rows.Err()
}

// findEventsQuery returns the SQL and parameters that select the bodies of
// up to limit of the account's events that match f and, unless hi is 0,
// have seqs in [lo, hi); by seq.
func findEventsQuery(accountID string, f herald.EventFilter, lo, hi int64, limit int) (string, []any) {
	var q strings.Builder
	q.WriteString("SELECT seq, id, body, hash FROM events WHERE account_id = ?")
	args := []any{accountID}
	for _, c := range filterColumns(f) {
		if c.value != "" {
			q.WriteString(" AND " + c.column + " = ?")
			args = append(args, c.value)
		}
	}
	if len(f.Types) > 0 {
		q.WriteString(" AND type IN (" + placeholders(len(f.Types)) + ")")
		for _, t := range f.Types {
			args = append(args, t)
		}
	}
	if len(f.Sources) > 0 {
		// Any of the categories, each with any of its primary ids or with
		// any at all when its list is empty. In key order, so that the
		// same filter is the same SQL.
		q.WriteString(" AND (")
		for i, category := range slices.Sorted(maps.Keys(f.Sources)) {
			if i > 0 {
				q.WriteString(" OR ")
			}
			ids := f.Sources[category]
			if len(ids) == 0 {
				q.WriteString("category = ?")
				args = append(args, category)
				continue
			}
			q.WriteString("(category = ? AND primary_id IN (" + placeholders(len(ids)) + "))")
			args = append(args, category)
			for _, id := range ids {
				args = append(args, id)
			}
		}
		q.WriteString(")")
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

// placeholders returns n parameters for an IN list: "?, ?, ?".
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
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
