package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// Statements of SaveDelivery, the commit of every batch of webhook
// deliveries, prepared once on the write connection. Attempts and
// messages go in as one JSON array of rows each, so that a batch is one
// statement whatever its size. jsonb_each, not json_each: it hands each
// row over as JSONB, which ->> reads without parsing the row's text again
// (a fifth less CPU per attempt). It keeps the array's order, and with it
// the order of the attempts' ids.
const (
	selectDeliveryState = "SELECT lease_owner, failing_since, cursor FROM subscriptions WHERE account_id = ? AND id = ?"
	updateDeliveryState = "UPDATE subscriptions SET cursor = ?, failing_since = ? WHERE account_id = ? AND id = ?"
	insertAttempts      = `INSERT INTO attempts (
		account_id, subscription_id, event_id, seq, number, at, outcome, status_code, latency_us, error, response
	) SELECT ?1, ?2, a->>0, a->>1, a->>2, a->>3, a->>4, a->>5, a->>6, a->>7, a->>8
		FROM (SELECT value AS a FROM jsonb_each(?3))`
	// WHERE true: without it SQLite would read ON CONFLICT as a join's
	// ON. An update leaves event_id, order_key and created_at alone:
	// messages_order, whose columns and condition it does not name, is
	// spared a rewrite.
	upsertMessages = `INSERT INTO messages (
		account_id, subscription_id, seq, event_id, order_key, state, attempts, next_attempt_at,
		last_status, last_error, created_at, updated_at
	) SELECT ?1, ?2, m->>0, m->>1, m->>2, m->>3, m->>4, m->>5, m->>6, m->>7, m->>8, m->>9
		FROM (SELECT value AS m FROM jsonb_each(?3)) WHERE true
	ON CONFLICT (account_id, subscription_id, seq) DO UPDATE SET
		state = excluded.state, attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
		last_status = excluded.last_status, last_error = excluded.last_error, updated_at = excluded.updated_at`
	deleteMessages = `DELETE FROM messages WHERE account_id = ? AND subscription_id = ?
		AND seq IN (SELECT value FROM json_each(?))`
)

// deliveryStmts are the statements the delivery engine runs over and
// over: those of SaveDelivery, prepared on the write connection, and
// DueMessages' query, prepared on the read pool (on each connection as it
// is first used there), whose parsing and planning would cost more than
// running it.
type deliveryStmts struct {
	state, move, attempts, messages, done *sql.Stmt
	due                                   *sql.Stmt
}

func (d *deliveryStmts) all() []**sql.Stmt {
	return []**sql.Stmt{&d.state, &d.move, &d.attempts, &d.messages, &d.done, &d.due}
}

func prepareDeliveries(ctx context.Context, write, read *sql.DB) (*deliveryStmts, error) {
	d := &deliveryStmts{}
	for _, p := range []struct {
		stmt **sql.Stmt
		db   *sql.DB
		text string
	}{
		{&d.state, write, selectDeliveryState}, {&d.move, write, updateDeliveryState},
		{&d.attempts, write, insertAttempts}, {&d.messages, write, upsertMessages}, {&d.done, write, deleteMessages},
		{&d.due, read, dueMessages},
	} {
		var err error
		if *p.stmt, err = p.db.PrepareContext(ctx, p.text); err != nil {
			d.close()
			return nil, err
		}
	}
	return d, nil
}

func (d *deliveryStmts) close() {
	for _, stmt := range d.all() {
		if *stmt != nil {
			(*stmt).Close()
		}
	}
}

// LeaseSubscriptions gives owner, in one transaction, the active
// subscriptions it holds and free ones (never leased, released, or whose
// lease ran out before now), up to max in all, those it holds first, and
// extends each lease to now+ttl. It returns them, oldest first. SQLite
// has one writer at a time: two owners never take the same one.
func (s *Store) LeaseSubscriptions(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Subscription, error) {
	list, err := leaseRows(ctx, s, "subscriptions", "state = 'active'", subscriptionColumns, scanSubscription,
		func(a, b *herald.Subscription) int {
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.ID, b.ID))
		}, owner, now, ttl, max)
	return list, wrapInternal(err, "lease subscriptions")
}

// ReleaseSubscriptions gives owner's leases up, so that another node may
// take them at once.
func (s *Store) ReleaseSubscriptions(ctx context.Context, owner string) error {
	if err := s.releaseLeases(ctx, owner, "subscriptions"); err != nil {
		return fmt.Errorf("release subscriptions of %s: %w", owner, err)
	}
	return nil
}

// SaveDelivery stores p in one transaction: ECONFLICT, and nothing
// stored, if p.Owner does not hold the subscription's lease (or the
// subscription is gone). The cursor only moves forward. Clearing
// failing_since on a subscription that was failing writes its recovered
// system event in the same commit. Attempts get their ids; attempts and
// messages get p's account and subscription.
func (s *Store) SaveDelivery(ctx context.Context, p *herald.DeliveryProgress) error {
	if p.AccountID == "" || p.SubscriptionID == "" || p.Owner == "" {
		return herald.Errorf(herald.EINVALID, "save delivery: account, subscription and owner are required")
	}
	at := timeNow()
	attempts, err := attemptsJSON(p, at)
	if err != nil {
		return fmt.Errorf("save delivery of %s: encode attempts: %w", p.SubscriptionID, err)
	}
	messages, err := messagesJSON(p, at)
	if err != nil {
		return fmt.Errorf("save delivery of %s: encode messages: %w", p.SubscriptionID, err)
	}

	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save delivery of %s: %w", p.SubscriptionID, err)
	}
	defer tx.Rollback()
	var (
		failingSince sql.NullInt64
		cursor       int64
	)
	if err := (leasedRow{"subscription", "delivers", p.SubscriptionID}).scanHeld(
		tx.StmtContext(ctx, s.deliveries.state).QueryRowContext(ctx, p.AccountID, p.SubscriptionID),
		p.Owner, &failingSince, &cursor); err != nil {
		return wrapInternal(err, "save delivery of "+p.SubscriptionID)
	}

	if attempts != "" {
		res, err := tx.StmtContext(ctx, s.deliveries.attempts).ExecContext(ctx, p.AccountID, p.SubscriptionID, attempts)
		if err != nil {
			return fmt.Errorf("save delivery of %s: insert attempts: %w", p.SubscriptionID, err)
		}
		// One statement of one writer under AUTOINCREMENT: the ids are
		// consecutive, in the order of the array.
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("save delivery of %s: insert attempts: %w", p.SubscriptionID, err)
		}
		for i, a := range p.Attempts {
			a.ID = last - int64(len(p.Attempts)-1-i)
		}
	}
	if messages != "" {
		if _, err := tx.StmtContext(ctx, s.deliveries.messages).ExecContext(ctx, p.AccountID, p.SubscriptionID, messages); err != nil {
			return fmt.Errorf("save delivery of %s: store messages: %w", p.SubscriptionID, err)
		}
	}
	if len(p.Done) > 0 {
		done, err := json.Marshal(p.Done)
		if err == nil {
			_, err = tx.StmtContext(ctx, s.deliveries.done).ExecContext(ctx, p.AccountID, p.SubscriptionID, string(done))
		}
		if err != nil {
			return fmt.Errorf("save delivery of %s: remove finished messages: %w", p.SubscriptionID, err)
		}
	}

	newCursor, newFailing := cursor, failingSince
	if p.Cursor > cursor {
		newCursor = p.Cursor
	}
	if !failingSince.Valid && p.FailingSince != nil {
		newFailing = sql.NullInt64{Int64: micros(*p.FailingSince), Valid: true}
	}
	recovered := p.ClearFailing && failingSince.Valid
	if recovered {
		newFailing = sql.NullInt64{}
	}
	if newCursor != cursor || newFailing != failingSince {
		if _, err := tx.StmtContext(ctx, s.deliveries.move).ExecContext(ctx,
			newCursor, newFailing, p.AccountID, p.SubscriptionID); err != nil {
			return fmt.Errorf("save delivery of %s: move cursor: %w", p.SubscriptionID, err)
		}
	}
	if recovered {
		e, err := herald.SystemEvent{
			AccountID: p.AccountID, SubjectType: herald.SubjectSubscription, SubjectID: p.SubscriptionID,
			Verb: herald.VerbRecovered, By: herald.SystemActor, At: at, Notes: "deliveries succeed again",
			Fields: map[string]any{"failingSince": fromMicros(failingSince.Int64)},
		}.Event()
		if err == nil {
			err = s.recordChange(ctx, tx, p.AccountID, e)
		}
		if err != nil {
			return fmt.Errorf("save delivery of %s: %w", p.SubscriptionID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save delivery of %s: %w", p.SubscriptionID, err)
	}
	return nil
}

// attemptsJSON returns p's attempts as the JSON array insertAttempts
// reads, "" for none. A zero At becomes at. Zero status codes and empty
// texts are stored as NULL.
func attemptsJSON(p *herald.DeliveryProgress, at time.Time) (string, error) {
	if len(p.Attempts) == 0 {
		return "", nil
	}
	rows := make([][9]any, len(p.Attempts))
	for i, a := range p.Attempts {
		a.AccountID, a.SubscriptionID = p.AccountID, p.SubscriptionID
		if a.At.IsZero() {
			a.At = at
		}
		rows[i] = [9]any{a.EventID, a.Seq, a.Number, micros(a.At), a.Outcome, nullIfZeroInt(a.StatusCode),
			a.LatencyMicros, nullIfEmpty(a.Error), nullIfEmpty(a.Response)}
	}
	b, err := json.Marshal(rows)
	return string(b), err
}

// messagesJSON returns p's messages as the JSON array upsertMessages
// reads, "" for none. Zero times become at.
func messagesJSON(p *herald.DeliveryProgress, at time.Time) (string, error) {
	if len(p.Messages) == 0 {
		return "", nil
	}
	rows := make([][10]any, len(p.Messages))
	for i, m := range p.Messages {
		m.AccountID, m.SubscriptionID = p.AccountID, p.SubscriptionID
		if m.CreatedAt.IsZero() {
			m.CreatedAt = at
		}
		if m.UpdatedAt.IsZero() {
			m.UpdatedAt = at
		}
		rows[i] = [10]any{m.Seq, m.EventID, nullIfEmpty(m.OrderKey), m.State, m.Attempts, nullIfZero(m.NextAttemptAt),
			nullIfZeroInt(m.LastStatus), nullIfEmpty(m.LastError), micros(m.CreatedAt), micros(m.UpdatedAt)}
	}
	b, err := json.Marshal(rows)
	return string(b), err
}

// nullIfZeroInt stores 0 as NULL.
func nullIfZeroInt(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

const messageColumns = "seq, event_id, order_key, state, attempts, next_attempt_at, last_status, last_error, created_at, updated_at"

// scanMessage reads a row of messageColumns.
func scanMessage(row interface{ Scan(...any) error }, accountID, subscriptionID string) (*herald.Message, error) {
	m := &herald.Message{AccountID: accountID, SubscriptionID: subscriptionID}
	var (
		orderKey, lastError  sql.NullString
		next, lastStatus     sql.NullInt64
		createdAt, updatedAt int64
	)
	if err := row.Scan(&m.Seq, &m.EventID, &orderKey, &m.State, &m.Attempts, &next, &lastStatus, &lastError,
		&createdAt, &updatedAt); err != nil {
		return nil, err
	}
	m.OrderKey, m.LastError, m.LastStatus = orderKey.String, lastError.String, int(lastStatus.Int64)
	m.NextAttemptAt, m.CreatedAt, m.UpdatedAt = timeOrZero(next), fromMicros(createdAt), fromMicros(updatedAt)
	return m, nil
}

// DueMessages returns up to limit of the subscription's messages to send
// now, by seq: retrying ones due by now and waiting ones (which have an
// order key: only ordered mode makes them), those with an order key only
// when no earlier message of their key is still pending
// (dead ones do not hold the others back). The indexes are named: left to
// itself, SQLite would rather walk all the subscription's messages in seq
// order, and look for an earlier one of the same key among all the
// earlier seqs, than sort the few it finds; with them, a call reads the
// due and waiting messages and, for each with a key, the messages of that
// key before it.
func (s *Store) DueMessages(ctx context.Context, accountID, subscriptionID string, now time.Time, limit int) ([]*herald.Message, error) {
	if limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	rows, err := s.deliveries.due.QueryContext(ctx, accountID, subscriptionID, micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("find due messages of %s: %w", subscriptionID, err)
	}
	defer rows.Close()
	list := []*herald.Message{}
	for rows.Next() {
		m, err := scanMessage(rows, accountID, subscriptionID)
		if err != nil {
			return nil, fmt.Errorf("find due messages of %s: %w", subscriptionID, err)
		}
		list = append(list, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find due messages of %s: %w", subscriptionID, err)
	}
	return list, nil
}

// dueMessages is the query of DueMessages.
const dueMessages = "SELECT " + messageColumns + ` FROM messages m INDEXED BY messages_due
		WHERE m.account_id = ?1 AND m.subscription_id = ?2 AND m.state = 'retrying' AND m.next_attempt_at <= ?3` + firstOfItsKey + `
	UNION ALL
	SELECT ` + messageColumns + ` FROM messages m INDEXED BY messages_due
		WHERE m.account_id = ?1 AND m.subscription_id = ?2 AND m.state = 'waiting' AND m.order_key IS NOT NULL` + firstOfItsKey + `
	ORDER BY seq LIMIT ?4`

// firstOfItsKey is the condition of dueMessages that message m has no
// order key, or no earlier message of its key that is still pending.
const firstOfItsKey = ` AND (m.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM messages o INDEXED BY messages_order
		WHERE o.account_id = ?1 AND o.subscription_id = ?2 AND o.order_key = m.order_key
			AND o.seq < m.seq AND o.state <> 'dead'))`

// messageWhere returns the conditions and parameters that select the
// subscription's messages that f selects, but for its state and limit.
func messageWhere(accountID, subscriptionID string, f herald.MessageFilter) (string, []any, error) {
	var q strings.Builder
	q.WriteString("account_id = ? AND subscription_id = ?")
	args := []any{accountID, subscriptionID}
	if len(f.EventIDs) > 0 {
		ids, err := json.Marshal(f.EventIDs)
		if err != nil {
			return "", nil, err
		}
		q.WriteString(" AND event_id IN (SELECT value FROM json_each(?))")
		args = append(args, string(ids))
	}
	if !f.After.IsZero() {
		q.WriteString(" AND created_at >= ?")
		args = append(args, micros(f.After))
	}
	if !f.Before.IsZero() {
		q.WriteString(" AND created_at < ?")
		args = append(args, micros(f.Before))
	}
	if f.AfterSeq > 0 {
		q.WriteString(" AND seq > ?")
		args = append(args, f.AfterSeq)
	}
	return q.String(), args, nil
}

// FindMessages returns up to f.Limit of the subscription's messages that f
// selects, by seq.
func (s *Store) FindMessages(ctx context.Context, accountID, subscriptionID string, f herald.MessageFilter) ([]*herald.Message, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	where, args, err := messageWhere(accountID, subscriptionID, f)
	if err != nil {
		return nil, fmt.Errorf("find messages of %s: %w", subscriptionID, err)
	}
	if f.State != "" {
		where += " AND state = ?"
		args = append(args, f.State)
	}
	list, err := queryAll(ctx, s.read, "SELECT "+messageColumns+" FROM messages WHERE "+where+" ORDER BY seq LIMIT ?",
		append(args, f.Limit), func(rows *sql.Rows) (*herald.Message, error) {
			return scanMessage(rows, accountID, subscriptionID)
		})
	if err != nil {
		return nil, fmt.Errorf("find messages of %s: %w", subscriptionID, err)
	}
	return list, nil
}

// RetryMessages makes the dead messages that f selects (the first f.Limit
// by seq, or all when it is 0) retrying again, due now, with their
// attempts counted from 0 so that the schedule starts over; it returns
// how many. f.State may only be empty or dead.
func (s *Store) RetryMessages(ctx context.Context, accountID, subscriptionID string, f herald.MessageFilter, now time.Time) (int, error) {
	if f.State != "" && f.State != herald.MessageDead {
		return 0, herald.Errorf(herald.EINVALID, "only dead messages can be retried, not %s ones", f.State)
	}
	where, args, err := messageWhere(accountID, subscriptionID, f)
	if err != nil {
		return 0, fmt.Errorf("retry messages of %s: %w", subscriptionID, err)
	}
	where += " AND state = 'dead'"
	if f.Limit > 0 {
		where = "account_id = ? AND subscription_id = ? AND seq IN (SELECT seq FROM messages WHERE " + where + " ORDER BY seq LIMIT ?)"
		args = append([]any{accountID, subscriptionID}, append(args, f.Limit)...)
	}
	at := micros(now)
	res, err := s.write.ExecContext(ctx, "UPDATE messages SET state = 'retrying', attempts = 0, next_attempt_at = ?, updated_at = ? WHERE "+where,
		append([]any{at, at}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("retry messages of %s: %w", subscriptionID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("retry messages of %s: %w", subscriptionID, err)
	}
	return int(n), nil
}

// FindAttempts returns up to f.Limit of the subscription's attempts that f
// selects, newest first.
func (s *Store) FindAttempts(ctx context.Context, accountID, subscriptionID string, f herald.AttemptFilter) ([]*herald.Attempt, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	var q strings.Builder
	q.WriteString(`SELECT id, event_id, seq, number, at, outcome, status_code, latency_us, error, response
		FROM attempts WHERE account_id = ? AND subscription_id = ?`)
	args := []any{accountID, subscriptionID}
	for _, c := range []struct{ column, value string }{{"outcome", f.Outcome}, {"event_id", f.EventID}} {
		if c.value != "" {
			q.WriteString(" AND " + c.column + " = ?")
			args = append(args, c.value)
		}
	}
	if !f.After.IsZero() {
		q.WriteString(" AND at >= ?")
		args = append(args, micros(f.After))
	}
	if !f.Before.IsZero() {
		q.WriteString(" AND at < ?")
		args = append(args, micros(f.Before))
	}
	if f.BeforeID > 0 {
		q.WriteString(" AND id < ?")
		args = append(args, f.BeforeID)
	}
	q.WriteString(" ORDER BY id DESC LIMIT ?")
	args = append(args, f.Limit)
	list, err := queryAll(ctx, s.read, q.String(), args, func(rows *sql.Rows) (*herald.Attempt, error) {
		a := &herald.Attempt{AccountID: accountID, SubscriptionID: subscriptionID}
		var at int64
		var status sql.NullInt64
		var errText, response sql.NullString
		if err := rows.Scan(&a.ID, &a.EventID, &a.Seq, &a.Number, &at, &a.Outcome, &status, &a.LatencyMicros,
			&errText, &response); err != nil {
			return nil, err
		}
		a.At, a.StatusCode, a.Error, a.Response = fromMicros(at), int(status.Int64), errText.String, response.String
		return a, nil
	})
	if err != nil {
		return nil, fmt.Errorf("find attempts of %s: %w", subscriptionID, err)
	}
	return list, nil
}

// PruneAttempts deletes up to limit of the oldest attempts made before
// before. Ids grow with time, so the oldest are the first rows of the
// table: the scan stops after the rows it deletes.
func (s *Store) PruneAttempts(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	res, err := s.write.ExecContext(ctx, `DELETE FROM attempts WHERE id IN (
		SELECT id FROM attempts WHERE at < ? ORDER BY id LIMIT ?)`, micros(before), limit)
	if err != nil {
		return 0, fmt.Errorf("prune attempts: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune attempts: %w", err)
	}
	return int(n), nil
}
