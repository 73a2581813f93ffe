package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/heraldhq/herald"
)

// LeaseSubscriptions renews the leases owner holds on active
// subscriptions and takes free ones (never leased, given up, or expired by
// now) until it holds max, all until now+ttl, in one transaction, and
// returns what it holds, oldest first. Several nodes may call it at once:
// each free subscription goes to one of them (FOR NO KEY UPDATE SKIP
// LOCKED). A node whose max shrank keeps what it held.
func (s *Store) LeaseSubscriptions(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Subscription, error) {
	list, err := lease(ctx, s, subscriptionLeases, scanSubscription, func(a, b *herald.Subscription) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.ID, b.ID))
	}, owner, now, ttl, max)
	return list, wrapInternal(err, "lease subscriptions")
}

// ReleaseSubscriptions gives owner's leases up, so that other nodes take
// them at once instead of when they expire.
func (s *Store) ReleaseSubscriptions(ctx context.Context, owner string) error {
	if err := s.releaseLeases(ctx, owner, "subscriptions"); err != nil {
		return fmt.Errorf("release subscriptions of %s: %w", owner, err)
	}
	return nil
}

// The statements of SaveDelivery. Each write holds the condition
// leaseHeld: the first statement of the transaction locked the
// subscription's row, so lease_owner cannot change until the commit, and
// either every write happens or none does.
const (
	lockSubscriptionSQL = `SELECT lease_owner, failing_since FROM subscriptions
		WHERE account_id = $1 AND id = $2 FOR NO KEY UPDATE`

	leaseHeld = `EXISTS (SELECT 1 FROM subscriptions WHERE account_id = $1 AND id = $2 AND lease_owner = $3)`

	// insertAttemptsSQL inserts the attempts in the order given, so that
	// their ids, drawn as they are inserted, grow in that order.
	insertAttemptsSQL = `INSERT INTO attempts (account_id, subscription_id, event_id, seq, number, at, outcome,
		status_code, latency_us, error, response)
	SELECT $1, $2, event_id, seq, number, at, outcome, NULLIF(status_code, 0), latency_us, NULLIF(error, ''), NULLIF(response, ''::bytea)
	FROM unnest($4::text[], $5::bigint[], $6::integer[], $7::timestamptz[], $8::text[], $9::integer[],
		$10::bigint[], $11::text[], $12::bytea[]) WITH ORDINALITY
		AS u (event_id, seq, number, at, outcome, status_code, latency_us, error, response, n)
	WHERE ` + leaseHeld + `
	ORDER BY n
	RETURNING id`

	// upsertMessagesSQL leaves event_id, order_key and created_at of a
	// message it replaces alone: messages_order_idx, whose columns and
	// condition it does not name, is spared a new entry.
	upsertMessagesSQL = `INSERT INTO messages (account_id, subscription_id, seq, event_id, order_key, state, attempts,
		next_attempt_at, last_status, last_error, created_at, updated_at)
	SELECT $1, $2, seq, event_id, NULLIF(order_key, ''), state, attempts,
		next_attempt_at, NULLIF(last_status, 0), NULLIF(last_error, ''), created_at, updated_at
	FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::integer[], $9::timestamptz[],
		$10::integer[], $11::text[], $12::timestamptz[], $13::timestamptz[])
		AS u (seq, event_id, order_key, state, attempts, next_attempt_at, last_status, last_error, created_at, updated_at)
	WHERE ` + leaseHeld + `
	ON CONFLICT (account_id, subscription_id, seq) DO UPDATE SET
		state = EXCLUDED.state, attempts = EXCLUDED.attempts, next_attempt_at = EXCLUDED.next_attempt_at,
		last_status = EXCLUDED.last_status, last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at`

	deleteMessagesSQL = `DELETE FROM messages
		WHERE account_id = $1 AND subscription_id = $2 AND seq = ANY($4::bigint[]) AND ` + leaseHeld

	// progressSQL moves the cursor forward and sets failing_since if it is
	// not set, or clears it ($6); a row it would not change is left alone,
	// sparing a new row version.
	progressSQL = `UPDATE subscriptions SET cursor = GREATEST(cursor, $4),
		failing_since = CASE WHEN $6 THEN NULL ELSE COALESCE(failing_since, $5) END
		WHERE account_id = $1 AND id = $2 AND lease_owner = $3
			AND (cursor < $4 OR ($6 AND failing_since IS NOT NULL) OR (NOT $6 AND failing_since IS NULL AND $5::timestamptz IS NOT NULL))`
)

// SaveDelivery stores p in one transaction, if p.Owner holds the
// subscription's lease: ECONFLICT if not, and nothing is stored. See
// doc.go, "Subscriptions and leases".
//
// It takes one round trip: the transaction's statements are pipelined,
// the first locks the subscription's row and reads its lease, and each
// write is conditional on the lease, so that a lost lease makes them all
// do nothing and the commit stores nothing. Only p.ClearFailing, rare,
// takes more: it may write the system event recovered, which needs the
// account's lock first, then a decision made on what the row holds.
func (s *Store) SaveDelivery(ctx context.Context, p *herald.DeliveryProgress) error {
	if p.AccountID == "" || p.SubscriptionID == "" || p.Owner == "" {
		return herald.Errorf(herald.EINVALID, "save delivery: account, subscription and owner are required")
	}
	lost := herald.Errorf(herald.ECONFLICT, "lease lost: %s does not deliver subscription %q", p.Owner, p.SubscriptionID)
	if !textOK(p.AccountID) || !textOK(p.SubscriptionID) || !textOK(p.Owner) {
		return lost // no such lease could have been taken
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save delivery of subscription %s: %w", p.SubscriptionID, err)
	}
	if p.ClearFailing {
		return s.saveRecovering(ctx, p, lost)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("save delivery of subscription %s: %w", p.SubscriptionID, err)
	}
	defer conn.Release()

	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	lock := queueLockSubscription(b, p)
	queueProgress(b, p)
	b.Queue("COMMIT")
	// As in AppendEvents, the caller's cancellation no longer applies
	// once the COMMIT is on its way: an error must mean that nothing was
	// stored.
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := conn.SendBatch(sendCtx, b).Close(); err != nil {
		rollback(conn)
		return fmt.Errorf("save delivery of subscription %s: %w", p.SubscriptionID, err)
	}
	if lock.owner != p.Owner {
		return lost
	}
	return nil
}

// saveRecovering is SaveDelivery with p.ClearFailing: when the
// subscription was failing it writes the system event recovered in the
// same transaction, and so takes the account's lock first, as every
// writer of system events does (doc.go).
func (s *Store) saveRecovering(ctx context.Context, p *herald.DeliveryProgress, lost error) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("save delivery of subscription %s: %w", p.SubscriptionID, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	st, err := lockAccount(ctx, tx, p.AccountID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return lost
	} else if err != nil {
		return fmt.Errorf("save delivery of subscription %s: %w", p.SubscriptionID, err)
	}
	b := &pgx.Batch{}
	lock := queueLockSubscription(b, p)
	queueProgress(b, p)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("save delivery of subscription %s: %w", p.SubscriptionID, err)
	}
	if lock.owner != p.Owner {
		return lost
	}
	if lock.failingSince.Valid {
		e, err := herald.SystemEvent{
			AccountID: p.AccountID, SubjectType: herald.SubjectSubscription, SubjectID: p.SubscriptionID,
			Verb: herald.VerbRecovered, By: herald.SystemActor, At: time.Now(), Notes: "deliveries succeed again",
			Fields: map[string]any{"failingSince": lock.failingSince.Time.UTC()},
		}.Event()
		if err == nil {
			err = recordChange(ctx, tx, st, p.AccountID, e)
		}
		if err != nil {
			return fmt.Errorf("save delivery of subscription %s: %w", p.SubscriptionID, err)
		}
	}
	// The caller's cancellation no longer applies, as in SaveDelivery.
	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := tx.Commit(commitCtx); err != nil {
		return fmt.Errorf("save delivery of subscription %s: commit: %w", p.SubscriptionID, err)
	}
	return nil
}

// subscriptionLock is what the lock of SaveDelivery read.
type subscriptionLock struct {
	owner        string // "" when the row is not leased, or gone
	failingSince pgtype.Timestamptz
}

// queueLockSubscription queues the statement that locks p's subscription
// and reads its lease.
func queueLockSubscription(b *pgx.Batch, p *herald.DeliveryProgress) *subscriptionLock {
	lock := &subscriptionLock{}
	b.Queue(lockSubscriptionSQL, p.AccountID, p.SubscriptionID).Query(func(rows pgx.Rows) error {
		var owner pgtype.Text
		_, err := pgx.ForEachRow(rows, []any{&owner, &lock.failingSince}, func() error {
			lock.owner = owner.String
			return nil
		})
		return err
	})
	return lock
}

// queueProgress queues the writes of p, each conditional on the lease,
// one statement for each kind over arrays of rows: attempts, then
// messages, then the finished ones (a seq both in Messages and Done is
// done), then the cursor. As the stores do, it gives the attempts and
// messages p's account and subscription, zero times the current time,
// and the attempts their ids once stored.
func queueProgress(b *pgx.Batch, p *herald.DeliveryProgress) {
	head := []any{p.AccountID, p.SubscriptionID, p.Owner}
	now := timeNow()
	if n := len(p.Attempts); n > 0 {
		var (
			cEvent, cOutcome, cError = make([]string, n), make([]string, n), make([]string, n)
			cSeq, cLatency           = make([]int64, n), make([]int64, n)
			cNumber, cStatus         = make([]int32, n), make([]int32, n)
			cAt                      = make([]time.Time, n)
			cResponse                = make([][]byte, n)
		)
		for i, a := range p.Attempts {
			a.AccountID, a.SubscriptionID = p.AccountID, p.SubscriptionID
			if a.At.IsZero() {
				a.At = now
			}
			cEvent[i], cSeq[i], cNumber[i], cAt[i] = a.EventID, a.Seq, int32(a.Number), a.At
			cOutcome[i], cStatus[i], cLatency[i] = a.Outcome, int32(a.StatusCode), a.LatencyMicros
			cError[i], cResponse[i] = cleanText(a.Error), []byte(a.Response)
		}
		b.Queue(insertAttemptsSQL, append(head, cEvent, cSeq, cNumber, cAt, cOutcome, cStatus, cLatency, cError, cResponse)...).
			Query(func(rows pgx.Rows) error {
				ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
				if err != nil || len(ids) != len(p.Attempts) {
					return err // none when the lease is lost
				}
				// Drawn in the order inserted, which is the order given.
				slices.Sort(ids)
				for i, a := range p.Attempts {
					a.ID = ids[i]
				}
				return nil
			})
	}
	if messages := lastOfEachSeq(p.Messages); len(messages) > 0 {
		n := len(messages)
		var (
			cSeq                         = make([]int64, n)
			cEvent, cKey, cState, cError = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			cAttempts, cStatus           = make([]int32, n), make([]int32, n)
			cNext                        = make([]pgtype.Timestamptz, n)
			cCreated, cUpdated           = make([]time.Time, n), make([]time.Time, n)
		)
		for i, m := range messages {
			m.AccountID, m.SubscriptionID = p.AccountID, p.SubscriptionID
			if m.CreatedAt.IsZero() {
				m.CreatedAt = now
			}
			if m.UpdatedAt.IsZero() {
				m.UpdatedAt = now
			}
			cSeq[i], cEvent[i], cKey[i], cState[i] = m.Seq, m.EventID, m.OrderKey, m.State
			cAttempts[i], cNext[i], cStatus[i], cError[i] = int32(m.Attempts), nullIfZero(m.NextAttemptAt), int32(m.LastStatus), cleanText(m.LastError)
			cCreated[i], cUpdated[i] = m.CreatedAt, m.UpdatedAt
		}
		b.Queue(upsertMessagesSQL, append(head, cSeq, cEvent, cKey, cState, cAttempts, cNext, cStatus, cError, cCreated, cUpdated)...)
	}
	if len(p.Done) > 0 {
		b.Queue(deleteMessagesSQL, append(head, p.Done)...)
	}
	if p.Cursor > 0 || p.FailingSince != nil || p.ClearFailing {
		b.Queue(progressSQL, append(head, p.Cursor, nullTime(p.FailingSince), p.ClearFailing)...)
	}
}

// lastOfEachSeq returns messages less those replaced by a later one of
// the same seq: one upsert cannot write a row twice.
func lastOfEachSeq(messages []*herald.Message) []*herald.Message {
	if len(messages) < 2 {
		return messages
	}
	last := make(map[int64]int, len(messages))
	for i, m := range messages {
		last[m.Seq] = i
	}
	if len(last) == len(messages) {
		return messages
	}
	kept := make([]*herald.Message, 0, len(last))
	for i, m := range messages {
		if last[m.Seq] == i {
			kept = append(kept, m)
		}
	}
	return kept
}

const messageColumns = `account_id, subscription_id, seq, event_id, order_key, state, attempts,
	next_attempt_at, last_status, last_error, created_at, updated_at`

// qualifiedMessageColumns are messageColumns of the table named m.
const qualifiedMessageColumns = `m.account_id, m.subscription_id, m.seq, m.event_id, m.order_key, m.state, m.attempts,
	m.next_attempt_at, m.last_status, m.last_error, m.created_at, m.updated_at`

// scanMessage reads a row of messageColumns.
func scanMessage(row scanner) (*herald.Message, error) {
	var (
		m                    herald.Message
		orderKey, lastError  *string
		lastStatus           *int32
		attempts             int32
		next                 pgtype.Timestamptz
		createdAt, updatedAt time.Time
	)
	if err := row.Scan(&m.AccountID, &m.SubscriptionID, &m.Seq, &m.EventID, &orderKey, &m.State, &attempts,
		&next, &lastStatus, &lastError, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	if orderKey != nil {
		m.OrderKey = *orderKey
	}
	if lastStatus != nil {
		m.LastStatus = int(*lastStatus)
	}
	if lastError != nil {
		m.LastError = *lastError
	}
	m.Attempts, m.NextAttemptAt = int(attempts), timeOrZero(next)
	m.CreatedAt, m.UpdatedAt = createdAt.UTC(), updatedAt.UTC()
	return &m, nil
}

// collectMessages reads the rows of a query of messageColumns.
func collectMessages(rows pgx.Rows) ([]*herald.Message, error) {
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*herald.Message, error) {
		return scanMessage(row)
	})
	if list == nil && err == nil {
		list = []*herald.Message{}
	}
	return list, err
}

// dueMessagesSQL returns the messages to send by $3, by seq: see
// herald.DeliveryService. A message with an order key is sent only when it
// is its key's oldest that is not dead (no earlier one of the key in
// messages_order_idx); it is then sent when due, or when waiting.
//
// The work it does grows with what it may return, not with the backlog:
// an ordered subscription whose endpoint is down holds, for each key, a
// retrying message and many waiting behind it. The first part reads the
// retrying ones due (messages_due_idx). The second finds the waiting ones
// whose turn came without reading every waiting message: the oldest
// waiting message of each key is the only one that can be its key's
// oldest, so it walks the keys that have waiting messages, one index
// probe each (a skip scan of messages_waiting_idx), and checks that one.
const dueMessagesSQL = `WITH RECURSIVE waiting (order_key, seq) AS (
		(SELECT order_key, seq FROM messages
			WHERE account_id = $1 AND subscription_id = $2 AND state = 'waiting' AND order_key IS NOT NULL
			ORDER BY order_key, seq LIMIT 1)
		UNION ALL
		SELECT n.order_key, n.seq FROM waiting w CROSS JOIN LATERAL (SELECT order_key, seq FROM messages
			WHERE account_id = $1 AND subscription_id = $2 AND state = 'waiting' AND order_key IS NOT NULL
				AND order_key > w.order_key
			ORDER BY order_key, seq LIMIT 1) AS n
	), candidates (seq) AS (
		SELECT seq FROM messages
			WHERE account_id = $1 AND subscription_id = $2 AND state = 'retrying' AND next_attempt_at <= $3
		UNION ALL
		SELECT seq FROM waiting
	)
	SELECT ` + qualifiedMessageColumns + ` FROM candidates c
	JOIN messages m ON m.account_id = $1 AND m.subscription_id = $2 AND m.seq = c.seq
	WHERE m.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM messages e
		WHERE e.account_id = $1 AND e.subscription_id = $2
			AND e.order_key = m.order_key AND e.seq < m.seq AND e.state <> 'dead')
	ORDER BY m.seq LIMIT $4`

// DueMessages returns up to limit messages to send now, by seq: see
// herald.DeliveryService.
func (s *Store) DueMessages(ctx context.Context, accountID, subscriptionID string, now time.Time, limit int) ([]*herald.Message, error) {
	if limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	if !textOK(accountID) || !textOK(subscriptionID) {
		return []*herald.Message{}, nil
	}
	rows, _ := s.pool.Query(ctx, dueMessagesSQL, accountID, subscriptionID, now, limit)
	list, err := collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("due messages of subscription %s: %w", subscriptionID, err)
	}
	return list, nil
}

// messageQuery builds the query of the subscription's messages that f
// selects, by seq: head selects what it wants, and ends in a WHERE
// condition. none reports a filter no stored message can match.
func messageQuery(head, accountID, subscriptionID string, f herald.MessageFilter) (q *query, none bool, err error) {
	if f.Limit < 0 {
		return nil, false, herald.Errorf(herald.EINVALID, "limit must not be negative")
	}
	q = newQuery(head, accountID, subscriptionID)
	none = !textOK(accountID) || !textOK(subscriptionID) || !textOK(f.State)
	if f.State != "" {
		q.where("state =", f.State)
	}
	if len(f.EventIDs) > 0 {
		ids := textOnly(f.EventIDs)
		none = none || len(ids) == 0
		q.and("event_id = ANY(" + q.param(ids) + ")")
	}
	if !f.After.IsZero() {
		q.where("created_at >=", f.After)
	}
	if !f.Before.IsZero() {
		q.where("created_at <", f.Before)
	}
	if f.AfterSeq > 0 {
		q.where("seq >", f.AfterSeq)
	}
	if f.Limit > 0 {
		q.orderLimit("seq", f.Limit)
	} else {
		q.sql.WriteString(" ORDER BY seq")
	}
	return q, none, nil
}

// FindMessages lists up to f.Limit of the subscription's messages that f
// selects, by seq.
func (s *Store) FindMessages(ctx context.Context, accountID, subscriptionID string, f herald.MessageFilter) ([]*herald.Message, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	q, none, err := messageQuery(`SELECT `+messageColumns+` FROM messages WHERE account_id = $1 AND subscription_id = $2`,
		accountID, subscriptionID, f)
	if err != nil {
		return nil, err
	}
	if none {
		return []*herald.Message{}, nil
	}
	rows, _ := s.pool.Query(ctx, q.sql.String(), q.args...)
	list, err := collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("find messages of subscription %s: %w", subscriptionID, err)
	}
	return list, nil
}

// RetryMessages makes the dead messages that f selects (up to f.Limit,
// the first by seq, when it is set) due at now with a fresh schedule, and
// returns how many. A filter on another state selects none.
func (s *Store) RetryMessages(ctx context.Context, accountID, subscriptionID string, f herald.MessageFilter, now time.Time) (int, error) {
	if f.State != "" && f.State != herald.MessageDead {
		return 0, nil
	}
	f.State = herald.MessageDead
	q, none, err := messageQuery(`SELECT seq FROM messages WHERE account_id = $1 AND subscription_id = $2`,
		accountID, subscriptionID, f)
	if err != nil {
		return 0, err
	}
	if none {
		return 0, nil
	}
	sql := `UPDATE messages SET state = 'retrying', attempts = 0, next_attempt_at = ` + q.param(now) + `,
		updated_at = ` + q.param(now) + `
		WHERE account_id = $1 AND subscription_id = $2 AND state = 'dead' AND seq IN (` + q.sql.String() + `)`
	tag, err := s.pool.Exec(ctx, sql, q.args...)
	if err != nil {
		return 0, fmt.Errorf("retry messages of subscription %s: %w", subscriptionID, err)
	}
	return int(tag.RowsAffected()), nil
}

// FindAttempts lists the subscription's attempts that f selects, newest
// first.
func (s *Store) FindAttempts(ctx context.Context, accountID, subscriptionID string, f herald.AttemptFilter) ([]*herald.Attempt, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	q := newQuery(`SELECT id, account_id, subscription_id, event_id, seq, number, at, outcome,
		COALESCE(status_code, 0), latency_us, COALESCE(error, ''), COALESCE(response, ''::bytea)
		FROM attempts WHERE account_id = $1 AND subscription_id = $2`, accountID, subscriptionID)
	none := !textOK(accountID) || !textOK(subscriptionID) || !textOK(f.Outcome) || !textOK(f.EventID)
	if f.Outcome != "" {
		q.where("outcome =", f.Outcome)
	}
	if f.EventID != "" {
		q.where("event_id =", f.EventID)
	}
	if !f.After.IsZero() {
		q.where("at >=", f.After)
	}
	if !f.Before.IsZero() {
		q.where("at <", f.Before)
	}
	if f.BeforeID > 0 {
		q.where("id <", f.BeforeID)
	}
	if none {
		return []*herald.Attempt{}, nil
	}
	q.orderLimit("id DESC", f.Limit)
	rows, _ := s.pool.Query(ctx, q.sql.String(), q.args...)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*herald.Attempt, error) {
		var (
			a              herald.Attempt
			number, status int32
			response       []byte
		)
		if err := row.Scan(&a.ID, &a.AccountID, &a.SubscriptionID, &a.EventID, &a.Seq, &number, &a.At, &a.Outcome,
			&status, &a.LatencyMicros, &a.Error, &response); err != nil {
			return nil, err
		}
		a.Number, a.StatusCode, a.Response, a.At = int(number), int(status), string(response), a.At.UTC()
		return &a, nil
	})
	if err != nil {
		return nil, fmt.Errorf("find attempts of subscription %s: %w", subscriptionID, err)
	}
	if list == nil {
		list = []*herald.Attempt{}
	}
	return list, nil
}

// PruneAttempts deletes up to limit of the oldest attempts made before
// before, walking the primary key from its start: ids grow with time.
func (s *Store) PruneAttempts(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM attempts WHERE id IN (
		SELECT id FROM attempts WHERE at < $1 ORDER BY id LIMIT $2)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("prune attempts: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
