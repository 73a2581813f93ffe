package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald"
)

const subscriptionColumns = "account_id, id, definition, state, state_reason, failing_since, cursor, created_at, updated_at"

// definer is a stored thing of which a client chooses the settings, its
// definition: a subscription, a workflow, a work job.
type definer interface{ Definition() ([]byte, error) }

// definitionColumn returns the settings of d, as JSON, for the definition
// column.
func definitionColumn(d definer) (string, error) {
	b, err := d.Definition()
	return string(b), err
}

// replaceDefinition stores the definition of d, and updatedAt, in the
// account's row of table whose keyColumn is key: what an update of a
// workflow or a work job writes.
func replaceDefinition(ctx context.Context, tx *sql.Tx, table, keyColumn, accountID, key string, d definer, updatedAt time.Time) error {
	definition, err := definitionColumn(d)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	_, err = tx.ExecContext(ctx, "UPDATE "+table+" SET definition = ?, updated_at = ? WHERE account_id = ? AND "+keyColumn+" = ?",
		definition, micros(updatedAt), accountID, key)
	return err
}

// scanSubscription reads a row of subscriptionColumns.
func scanSubscription(row rowScanner) (*herald.Subscription, error) {
	var (
		accountID, id, state string
		definition           []byte
		reason               sql.NullString
		failingSince         sql.NullInt64
		cursor               int64
		createdAt, updatedAt int64
	)
	if err := row.Scan(&accountID, &id, &definition, &state, &reason, &failingSince, &cursor, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	s := &herald.Subscription{}
	if err := json.Unmarshal(definition, s); err != nil {
		return nil, fmt.Errorf("decode subscription %s: %w", id, err)
	}
	s.AccountID, s.ID, s.State, s.StateReason = accountID, id, state, reason.String
	s.FailingSince, s.Cursor = timePtr(failingSince), cursor
	s.CreatedAt, s.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	return s, nil
}

// findSubscription reads the subscription with q: ENOTFOUND if the
// account has none of that id.
func findSubscription(ctx context.Context, q rowQuerier, accountID, id string) (*herald.Subscription, error) {
	s, err := scanSubscription(q.QueryRowContext(ctx, "SELECT "+subscriptionColumns+
		" FROM subscriptions WHERE account_id = ? AND id = ?", accountID, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "subscription %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("find subscription %s: %w", id, err)
	}
	return s, nil
}

// timeNow returns the current time as the stores keep it.
func timeNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// CreateSubscription stores sub with its first secret, and its system
// event, in one transaction. A Cursor of 0 becomes the account's last seq
// and a negative one 0 (replay everything),
// read under the write lock: no event is stored between that read and the
// commit, so the subscription gets exactly the events stored after it.
// sub gets the stored times, state and cursor. ECONFLICT if the account
// has a subscription of that id, ENOTFOUND if there is no such account.
func (s *Store) CreateSubscription(ctx context.Context, sub *herald.Subscription, secret string) error {
	switch {
	case sub.ID == "":
		return herald.Errorf(herald.EINVALID, "subscription id is required")
	case secret == "":
		return herald.Errorf(herald.EINVALID, "subscription %s: a signing secret is required", sub.ID)
	case sub.State != "" && !herald.ValidSubscriptionState(sub.State):
		return herald.Errorf(herald.EINVALID, "subscription %s: unknown state %q", sub.ID, sub.State)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", sub.ID, err)
	}
	defer tx.Rollback()

	var lastSeq int64
	err = tx.QueryRowContext(ctx, "SELECT last_seq FROM accounts WHERE id = ?", sub.AccountID).Scan(&lastSeq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return herald.Errorf(herald.ENOTFOUND, "account %q not found", sub.AccountID)
	case err != nil:
		return fmt.Errorf("create subscription %s: %w", sub.ID, err)
	}

	at := timeNow()
	c := *sub
	if c.State == "" {
		c.State = herald.SubscriptionActive
	}
	c.PrepareCreate(lastSeq, at)
	definition, err := definitionColumn(&c)
	if err != nil {
		return fmt.Errorf("create subscription %s: encode: %w", sub.ID, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO subscriptions (
		account_id, id, name, definition, state, state_reason, failing_since, cursor, created_at, updated_at
	) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.AccountID, c.ID, c.Name, definition, c.State, nullIfEmpty(c.StateReason), nullTime(c.FailingSince),
		c.Cursor, micros(c.CreatedAt), micros(c.UpdatedAt))
	switch {
	case isUniqueViolation(err):
		return herald.Errorf(herald.ECONFLICT, "subscription %q already exists", c.ID)
	case err != nil:
		return fmt.Errorf("create subscription %s: %w", sub.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO subscription_secrets (account_id, subscription_id, secret, created_at)
		VALUES (?, ?, ?, ?)`, c.AccountID, c.ID, secret, micros(at)); err != nil {
		return fmt.Errorf("create subscription %s: store its secret: %w", sub.ID, err)
	}
	e, err := herald.ChangeEvent(ctx, c.AccountID, herald.SubjectSubscription, c.ID, herald.VerbCreated, at, nil, &c)
	if err == nil {
		err = s.recordChange(ctx, tx, c.AccountID, e)
	}
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", sub.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create subscription %s: %w", sub.ID, err)
	}
	*sub = c
	return nil
}

// FindSubscriptionByID returns ENOTFOUND if the account has no such
// subscription.
func (s *Store) FindSubscriptionByID(ctx context.Context, accountID, id string) (*herald.Subscription, error) {
	return findSubscription(ctx, s.read, accountID, id)
}

// FindSubscriptions returns the account's subscriptions, oldest first.
func (s *Store) FindSubscriptions(ctx context.Context, accountID string) ([]*herald.Subscription, error) {
	list, err := queryAll(ctx, s.read, "SELECT "+subscriptionColumns+
		" FROM subscriptions WHERE account_id = ? ORDER BY created_at, rowid", []any{accountID},
		func(rows *sql.Rows) (*herald.Subscription, error) { return scanSubscription(rows) })
	if err != nil {
		return nil, fmt.Errorf("find subscriptions of %s: %w", accountID, err)
	}
	return list, nil
}

// UpdateSubscription replaces the settings of sub (its definition) and
// keeps what delivery changes: state, cursor, failing_since, the lease and
// created_at. sub gets the stored subscription. ENOTFOUND if there is
// none.
func (s *Store) UpdateSubscription(ctx context.Context, sub *herald.Subscription) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update subscription %s: %w", sub.ID, err)
	}
	defer tx.Rollback()
	before, err := findSubscription(ctx, tx, sub.AccountID, sub.ID)
	if err != nil {
		return err
	}
	after := *sub
	after.State, after.StateReason, after.FailingSince = before.State, before.StateReason, before.FailingSince
	after.Cursor, after.CreatedAt, after.UpdatedAt = before.Cursor, before.CreatedAt, timeNow()
	definition, err := definitionColumn(&after)
	if err != nil {
		return fmt.Errorf("update subscription %s: encode: %w", sub.ID, err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE subscriptions SET name = ?, definition = ?, updated_at = ? WHERE account_id = ? AND id = ?",
		after.Name, definition, micros(after.UpdatedAt), after.AccountID, after.ID); err != nil {
		return fmt.Errorf("update subscription %s: %w", sub.ID, err)
	}
	e, err := herald.ChangeEvent(ctx, after.AccountID, herald.SubjectSubscription, after.ID, herald.VerbUpdated, after.UpdatedAt, before, &after)
	if err == nil {
		err = s.recordChange(ctx, tx, after.AccountID, e)
	}
	if err != nil {
		return fmt.Errorf("update subscription %s: %w", sub.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("update subscription %s: %w", sub.ID, err)
	}
	*sub = after
	return nil
}

// SetSubscriptionState moves the subscription to state, with reason, and
// writes its system event: failed when it is disabled, with the reason as
// notes, else updated. Resuming one clears failing_since, so that its
// failures before it stopped do not count towards disabling it again. A
// call that changes nothing writes nothing. ENOTFOUND if there is none.
func (s *Store) SetSubscriptionState(ctx context.Context, accountID, id, state, reason string) error {
	if !herald.ValidSubscriptionState(state) {
		return herald.Errorf(herald.EINVALID, "unknown subscription state %q", state)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set state of subscription %s: %w", id, err)
	}
	defer tx.Rollback()
	before, err := findSubscription(ctx, tx, accountID, id)
	if err != nil {
		return err
	}
	if before.State == state && before.StateReason == reason {
		return nil
	}
	after := *before
	after.State, after.StateReason, after.UpdatedAt = state, reason, timeNow()
	if state == herald.SubscriptionActive {
		after.FailingSince = nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE subscriptions SET state = ?, state_reason = ?, failing_since = ?, updated_at = ?
		WHERE account_id = ? AND id = ?`,
		after.State, nullIfEmpty(after.StateReason), nullTime(after.FailingSince), micros(after.UpdatedAt), accountID, id); err != nil {
		return fmt.Errorf("set state of subscription %s: %w", id, err)
	}
	var e *herald.Event
	if state == herald.SubscriptionDisabled {
		e, err = herald.SystemEvent{
			AccountID: accountID, SubjectType: herald.SubjectSubscription, SubjectID: id, Verb: herald.VerbFailed,
			By: herald.ActorFrom(ctx), At: after.UpdatedAt, Notes: reason,
			Fields: map[string]any{
				"before": map[string]any{"state": before.State, "stateReason": before.StateReason},
				"after":  map[string]any{"state": after.State, "stateReason": after.StateReason},
			},
		}.Event()
	} else {
		e, err = herald.ChangeEvent(ctx, accountID, herald.SubjectSubscription, id, herald.VerbUpdated, after.UpdatedAt, before, &after)
	}
	if err == nil {
		err = s.recordChange(ctx, tx, accountID, e)
	}
	if err != nil {
		return fmt.Errorf("set state of subscription %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set state of subscription %s: %w", id, err)
	}
	return nil
}

// DeleteSubscription removes the subscription with its secrets, messages
// and attempts, and writes its system event. ENOTFOUND if there is none.
func (s *Store) DeleteSubscription(ctx context.Context, accountID, id string) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	defer tx.Rollback()
	before, err := findSubscription(ctx, tx, accountID, id)
	if err != nil {
		return err
	}
	for _, table := range []string{"attempts", "messages", "subscription_secrets"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE account_id = ? AND subscription_id = ?", accountID, id); err != nil {
			return fmt.Errorf("delete subscription %s: %s: %w", id, table, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM subscriptions WHERE account_id = ? AND id = ?", accountID, id); err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	e, err := herald.ChangeEvent(ctx, accountID, herald.SubjectSubscription, id, herald.VerbDeleted, timeNow(), before, nil)
	if err == nil {
		err = s.recordChange(ctx, tx, accountID, e)
	}
	if err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	return nil
}

// FindSigningSecrets returns the secrets that sign now: the current one
// first, then the rotated ones not yet expired, newest first. ENOTFOUND if
// there is no such subscription.
func (s *Store) FindSigningSecrets(ctx context.Context, accountID, id string) ([]herald.SigningSecret, error) {
	// One read transaction: the check that the subscription exists sees
	// the same commit as the secrets.
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("find secrets of subscription %s: %w", id, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, "SELECT 1 FROM subscriptions WHERE account_id = ? AND id = ?", accountID, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "subscription %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("find secrets of subscription %s: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT secret, created_at, expires_at FROM subscription_secrets
		WHERE account_id = ? AND subscription_id = ? AND (expires_at IS NULL OR expires_at > ?)
		ORDER BY expires_at IS NOT NULL, created_at DESC, rowid DESC`, accountID, id, micros(time.Now()))
	if err != nil {
		return nil, fmt.Errorf("find secrets of subscription %s: %w", id, err)
	}
	defer rows.Close()
	secrets := []herald.SigningSecret{}
	for rows.Next() {
		var sec herald.SigningSecret
		var createdAt int64
		var expiresAt sql.NullInt64
		if err := rows.Scan(&sec.Secret, &createdAt, &expiresAt); err != nil {
			return nil, fmt.Errorf("find secrets of subscription %s: %w", id, err)
		}
		sec.CreatedAt, sec.ExpiresAt = fromMicros(createdAt), timePtr(expiresAt)
		secrets = append(secrets, sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find secrets of subscription %s: %w", id, err)
	}
	return secrets, nil
}

// RotateSigningSecret makes secret the current one of the subscription;
// the one it replaces signs until oldExpiresAt. Secrets that have expired
// are removed. The system event (updated) says that the secret was
// rotated, never what it is. ENOTFOUND if there is no such subscription.
func (s *Store) RotateSigningSecret(ctx context.Context, accountID, id, secret string, oldExpiresAt time.Time) error {
	if secret == "" {
		return herald.Errorf(herald.EINVALID, "subscription %s: a signing secret is required", id)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rotate secret of subscription %s: %w", id, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, "SELECT 1 FROM subscriptions WHERE account_id = ? AND id = ?", accountID, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return herald.Errorf(herald.ENOTFOUND, "subscription %q not found", id)
	case err != nil:
		return fmt.Errorf("rotate secret of subscription %s: %w", id, err)
	}
	at := timeNow()
	for _, step := range []struct {
		query string
		args  []any
	}{
		{"UPDATE subscription_secrets SET expires_at = ? WHERE account_id = ? AND subscription_id = ? AND expires_at IS NULL",
			[]any{micros(oldExpiresAt), accountID, id}},
		{"DELETE FROM subscription_secrets WHERE account_id = ? AND subscription_id = ? AND expires_at <= ?",
			[]any{accountID, id, micros(at)}},
		{"INSERT INTO subscription_secrets (account_id, subscription_id, secret, created_at) VALUES (?, ?, ?, ?)",
			[]any{accountID, id, secret, micros(at)}},
	} {
		if _, err := tx.ExecContext(ctx, step.query, step.args...); err != nil {
			return fmt.Errorf("rotate secret of subscription %s: %w", id, err)
		}
	}
	e, err := herald.SystemEvent{
		AccountID: accountID, SubjectType: herald.SubjectSubscription, SubjectID: id, Verb: herald.VerbUpdated,
		By: herald.ActorFrom(ctx), At: at, Fields: map[string]any{"secretRotated": true},
	}.Event()
	if err == nil {
		err = s.recordChange(ctx, tx, accountID, e)
	}
	if err != nil {
		return fmt.Errorf("rotate secret of subscription %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rotate secret of subscription %s: %w", id, err)
	}
	return nil
}
