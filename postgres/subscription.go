package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/heraldhq/herald"
)

const subscriptionColumns = `account_id, id, definition, state, state_reason, failing_since, cursor, created_at, updated_at`

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
func replaceDefinition(ctx context.Context, tx pgx.Tx, table, keyColumn, accountID, key string, d definer, updatedAt time.Time) error {
	definition, err := definitionColumn(d)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	_, err = tx.Exec(ctx, `UPDATE `+table+` SET definition = $3::text::json, updated_at = $4 WHERE account_id = $1 AND `+keyColumn+` = $2`,
		accountID, key, definition, updatedAt)
	return err
}

// scanSubscription reads a row of subscriptionColumns.
func scanSubscription(row scanner) (*herald.Subscription, error) {
	var (
		accountID, id, state string
		definition           []byte
		reason               *string
		failingSince         pgtype.Timestamptz
		cursor               int64
		createdAt, updatedAt time.Time
	)
	if err := row.Scan(&accountID, &id, &definition, &state, &reason, &failingSince, &cursor, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	s := &herald.Subscription{}
	if err := json.Unmarshal(definition, s); err != nil {
		return nil, fmt.Errorf("decode subscription %s: %w", id, err)
	}
	s.AccountID, s.ID, s.State = accountID, id, state
	if reason != nil {
		s.StateReason = *reason
	}
	s.FailingSince, s.Cursor = timePtr(failingSince), cursor
	s.CreatedAt, s.UpdatedAt = createdAt.UTC(), updatedAt.UTC()
	return s, nil
}

// qualified returns columns, a list of column names, each prefixed with
// table and a dot: for a RETURNING of an UPDATE … FROM, where a bare name
// would be ambiguous.
func qualified(table, columns string) string {
	names := strings.Split(columns, ",")
	for i, n := range names {
		names[i] = table + "." + strings.TrimSpace(n)
	}
	return strings.Join(names, ", ")
}

// findSubscription reads the subscription with q, under a row lock when
// lock is set: ENOTFOUND if the account has none of that id.
func findSubscription(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, accountID, id string, lock bool) (*herald.Subscription, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "subscription %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return nil, notFound // could not have been stored
	}
	sql := `SELECT ` + subscriptionColumns + ` FROM subscriptions WHERE account_id = $1 AND id = $2`
	if lock {
		sql += ` FOR NO KEY UPDATE`
	}
	s, err := scanSubscription(q.QueryRow(ctx, sql, accountID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("find subscription %s: %w", id, err)
	}
	return s, nil
}

// timeNow returns the current time as the store keeps it.
func timeNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// nullIfEmpty stores an empty string as NULL.
func nullIfEmpty(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

// cleanText returns s as PostgreSQL's text can hold it: invalid UTF-8 and
// NUL become U+FFFD. For human lines (errors, reasons) that may quote what
// an endpoint or an event held.
func cleanText(s string) string {
	if textOK(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// CreateSubscription stores sub with its first secret, and its system
// event, in one transaction. A Cursor of 0 becomes the account's last seq
// and a negative one 0 (replay everything),
// read under the account's lock, which every append takes: no event is
// numbered between that read and the commit, so the subscription gets
// exactly the events stored after it (its own system event among them).
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
	case !textOK(sub.AccountID):
		return herald.Errorf(herald.ENOTFOUND, "account %q not found", sub.AccountID)
	}
	if err := checkFields("/id", sub.ID, "/name", sub.Name, "/secret", secret); err != nil {
		return err
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", sub.ID, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	st, err := lockAccount(ctx, tx, sub.AccountID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return err
	} else if err != nil {
		return fmt.Errorf("create subscription %s: %w", sub.ID, err)
	}

	at := timeNow()
	c := *sub
	if c.State == "" {
		c.State = herald.SubscriptionActive
	}
	c.StateReason = cleanText(c.StateReason)
	c.PrepareCreate(st.LastSeq[c.AccountID], at)
	definition, err := definitionColumn(&c)
	if err != nil {
		return fmt.Errorf("create subscription %s: encode: %w", sub.ID, err)
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO subscriptions (account_id, id, name, definition, state, state_reason, failing_since,
			cursor, created_at, updated_at)
		VALUES ($1, $2, $3, $4::text::json, $5, $6, $7, $8, $9, $10)`,
		c.AccountID, c.ID, c.Name, definition, c.State, nullIfEmpty(c.StateReason), nullTime(c.FailingSince),
		c.Cursor, c.CreatedAt, c.UpdatedAt)
	b.Queue(`INSERT INTO subscription_secrets (account_id, subscription_id, secret, created_at) VALUES ($1, $2, $3, $4)`,
		c.AccountID, c.ID, secret, at)
	err = tx.SendBatch(ctx, b).Close()
	if _, ok := isUniqueViolation(err); ok {
		return herald.Errorf(herald.ECONFLICT, "subscription %q already exists", c.ID)
	} else if err != nil {
		return fmt.Errorf("create subscription %s: %w", sub.ID, err)
	}
	e, err := herald.ChangeEvent(ctx, c.AccountID, herald.SubjectSubscription, c.ID, herald.VerbCreated, at, nil, &c)
	if err == nil {
		err = recordChange(ctx, tx, st, c.AccountID, e)
	}
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", sub.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create subscription %s: commit: %w", sub.ID, err)
	}
	*sub = c
	return nil
}

// FindSubscriptionByID returns ENOTFOUND if the account has no such
// subscription.
func (s *Store) FindSubscriptionByID(ctx context.Context, accountID, id string) (*herald.Subscription, error) {
	return findSubscription(ctx, s.pool, accountID, id, false)
}

// FindSubscriptions returns the account's subscriptions, oldest first.
func (s *Store) FindSubscriptions(ctx context.Context, accountID string) ([]*herald.Subscription, error) {
	if !textOK(accountID) {
		return []*herald.Subscription{}, nil
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions WHERE account_id = $1
		ORDER BY created_at, id COLLATE "C"`, accountID)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*herald.Subscription, error) {
		return scanSubscription(row)
	})
	if err != nil {
		return nil, fmt.Errorf("find subscriptions of %s: %w", accountID, err)
	}
	if list == nil {
		list = []*herald.Subscription{}
	}
	return list, nil
}

// changeSubscription runs change on the account's subscription id in a
// transaction that holds the account's lock, then the subscription's row
// lock (the order every change takes them in, see doc.go), and records
// the system event change returns. A nil event changes nothing.
func (s *Store) changeSubscription(ctx context.Context, what, accountID, id string,
	change func(tx pgx.Tx, before *herald.Subscription) (*herald.Event, error)) error {
	if !textOK(accountID) || !textOK(id) {
		return herald.Errorf(herald.ENOTFOUND, "subscription %q not found", id)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	st, err := lockAccount(ctx, tx, accountID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return herald.Errorf(herald.ENOTFOUND, "subscription %q not found", id)
	} else if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	before, err := findSubscription(ctx, tx, accountID, id, true)
	if err != nil {
		return err
	}
	e, err := change(tx, before)
	if err != nil {
		if herald.ErrorCode(err) != herald.EINTERNAL {
			return err
		}
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	if e == nil {
		return nil
	}
	if err := recordChange(ctx, tx, st, accountID, e); err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s %s: commit: %w", what, id, err)
	}
	return nil
}

// UpdateSubscription replaces the settings of sub (its name and
// definition) and keeps what delivery changes: state, cursor,
// failing_since, the lease and created_at. sub gets the stored
// subscription. ENOTFOUND if there is none.
func (s *Store) UpdateSubscription(ctx context.Context, sub *herald.Subscription) error {
	if err := checkFields("/name", sub.Name); err != nil {
		return err
	}
	var after herald.Subscription
	err := s.changeSubscription(ctx, "update subscription", sub.AccountID, sub.ID, func(tx pgx.Tx, before *herald.Subscription) (*herald.Event, error) {
		after = *sub
		after.State, after.StateReason, after.FailingSince = before.State, before.StateReason, before.FailingSince
		after.Cursor, after.CreatedAt, after.UpdatedAt = before.Cursor, before.CreatedAt, timeNow()
		definition, err := definitionColumn(&after)
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE subscriptions SET name = $3, definition = $4::text::json, updated_at = $5
			WHERE account_id = $1 AND id = $2`,
			after.AccountID, after.ID, after.Name, definition, after.UpdatedAt); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, after.AccountID, herald.SubjectSubscription, after.ID, herald.VerbUpdated, after.UpdatedAt, before, &after)
	})
	if err != nil {
		return err
	}
	*sub = after
	return nil
}

// SetSubscriptionState moves the subscription to state, with reason, and
// writes its system event: failed when it is disabled, with the reason as
// notes, else updated. Resuming one clears failing_since, so that its
// failures before it stopped do not count towards disabling it again. Its
// lease is left as it is: LeaseSubscriptions returns active ones only, so
// the holder lets a paused one go at its next renewal. A call that
// changes nothing writes nothing. ENOTFOUND if there is none.
func (s *Store) SetSubscriptionState(ctx context.Context, accountID, id, state, reason string) error {
	if !herald.ValidSubscriptionState(state) {
		return herald.Errorf(herald.EINVALID, "unknown subscription state %q", state)
	}
	reason = cleanText(reason)
	return s.changeSubscription(ctx, "set state of subscription", accountID, id, func(tx pgx.Tx, before *herald.Subscription) (*herald.Event, error) {
		if before.State == state && before.StateReason == reason {
			return nil, nil
		}
		after := *before
		after.State, after.StateReason, after.UpdatedAt = state, reason, timeNow()
		if state == herald.SubscriptionActive {
			after.FailingSince = nil
		}
		if _, err := tx.Exec(ctx, `UPDATE subscriptions SET state = $3, state_reason = $4, failing_since = $5, updated_at = $6
			WHERE account_id = $1 AND id = $2`,
			accountID, id, after.State, nullIfEmpty(after.StateReason), nullTime(after.FailingSince), after.UpdatedAt); err != nil {
			return nil, err
		}
		if state != herald.SubscriptionDisabled {
			return herald.ChangeEvent(ctx, accountID, herald.SubjectSubscription, id, herald.VerbUpdated, after.UpdatedAt, before, &after)
		}
		return herald.SystemEvent{
			AccountID: accountID, SubjectType: herald.SubjectSubscription, SubjectID: id, Verb: herald.VerbFailed,
			By: herald.ActorFrom(ctx), At: after.UpdatedAt, Notes: reason,
			Fields: map[string]any{
				"before": map[string]any{"state": before.State, "stateReason": before.StateReason},
				"after":  map[string]any{"state": after.State, "stateReason": after.StateReason},
			},
		}.Event()
	})
}

// DeleteSubscription removes the subscription with its secrets, messages
// and attempts, and writes its system event. ENOTFOUND if there is none.
// A deliverer that still holds its lease is refused at its next
// SaveDelivery, which finds no row to lock.
func (s *Store) DeleteSubscription(ctx context.Context, accountID, id string) error {
	return s.changeSubscription(ctx, "delete subscription", accountID, id, func(tx pgx.Tx, before *herald.Subscription) (*herald.Event, error) {
		b := &pgx.Batch{}
		for _, table := range []string{"attempts", "messages", "subscription_secrets"} {
			b.Queue(`DELETE FROM `+table+` WHERE account_id = $1 AND subscription_id = $2`, accountID, id)
		}
		b.Queue(`DELETE FROM subscriptions WHERE account_id = $1 AND id = $2`, accountID, id)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, accountID, herald.SubjectSubscription, id, herald.VerbDeleted, timeNow(), before, nil)
	})
}

// FindSigningSecrets returns the secrets that sign now: the current one
// first, then the rotated ones not yet expired, newest first. ENOTFOUND if
// there is no such subscription.
func (s *Store) FindSigningSecrets(ctx context.Context, accountID, id string) ([]herald.SigningSecret, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "subscription %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return nil, notFound
	}
	// One statement, so one snapshot: the subscription and its secrets as
	// one commit left them. A subscription without secrets (none is) comes
	// back as one row of NULLs.
	rows, _ := s.pool.Query(ctx, `SELECT k.secret, k.created_at, k.expires_at FROM subscriptions s
		LEFT JOIN subscription_secrets k ON k.account_id = s.account_id AND k.subscription_id = s.id
			AND (k.expires_at IS NULL OR k.expires_at > $3)
		WHERE s.account_id = $1 AND s.id = $2
		ORDER BY k.expires_at IS NOT NULL, k.created_at DESC, k.expires_at DESC`, accountID, id, time.Now())
	var (
		found     bool
		secrets   = []herald.SigningSecret{}
		secret    pgtype.Text
		createdAt pgtype.Timestamptz
		expiresAt pgtype.Timestamptz
	)
	_, err := pgx.ForEachRow(rows, []any{&secret, &createdAt, &expiresAt}, func() error {
		found = true
		if secret.Valid {
			secrets = append(secrets, herald.SigningSecret{
				Secret: secret.String, CreatedAt: timeOrZero(createdAt), ExpiresAt: timePtr(expiresAt),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find secrets of subscription %s: %w", id, err)
	}
	if !found {
		return nil, notFound
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
	if err := checkFields("/secret", secret); err != nil {
		return err
	}
	return s.changeSubscription(ctx, "rotate secret of subscription", accountID, id, func(tx pgx.Tx, _ *herald.Subscription) (*herald.Event, error) {
		at := timeNow()
		b := &pgx.Batch{}
		b.Queue(`UPDATE subscription_secrets SET expires_at = $3
			WHERE account_id = $1 AND subscription_id = $2 AND expires_at IS NULL`, accountID, id, oldExpiresAt)
		b.Queue(`DELETE FROM subscription_secrets WHERE account_id = $1 AND subscription_id = $2 AND expires_at <= $3`,
			accountID, id, at)
		b.Queue(`INSERT INTO subscription_secrets (account_id, subscription_id, secret, created_at) VALUES ($1, $2, $3, $4)`,
			accountID, id, secret, at)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
		return herald.SystemEvent{
			AccountID: accountID, SubjectType: herald.SubjectSubscription, SubjectID: id, Verb: herald.VerbUpdated,
			By: herald.ActorFrom(ctx), At: at, Fields: map[string]any{"secretRotated": true},
		}.Event()
	})
}
