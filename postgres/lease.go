package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/heraldhq/herald"
)

// Subscriptions, workflows and work jobs are leased alike (doc.go,
// "Subscriptions and leases"): an owner holds a row until lease_until,
// renews what it holds and takes free rows, gives them up when it stops,
// and each save checks, under the row's lock, that it still holds it. The
// helpers here are that, once for every table.

// checkLease validates the arguments of a lease call.
func checkLease(owner string, ttl time.Duration, max int) error {
	switch {
	case owner == "" || !textOK(owner):
		return herald.Errorf(herald.EINVALID, "lease owner must be valid UTF-8 text, not empty")
	case ttl <= 0:
		return herald.Errorf(herald.EINVALID, "lease ttl must be positive")
	case max <= 0:
		return herald.Errorf(herald.EINVALID, "lease max must be positive")
	}
	return nil
}

// leased is the pair of statements that lease the rows of a table.
type leased struct {
	// renew extends the leases owner ($1) holds to $2. It waits for the
	// row locks of its own holders' saves, which are short, rather than
	// skip them: a lease it skipped would not be returned, and the engine
	// would stop a holder for nothing. Rows are locked in key order, so
	// that two calls of one owner cannot deadlock; no other transaction
	// locks two rows of the table.
	renew string
	// take gives owner ($1), until $3, up to $4 free rows: never leased,
	// given up, or whose lease expired by $2. A row another transaction
	// has locked is skipped (another node taking it, a holder saving, a
	// change): it is someone else's or will be free at the next call.
	// Locking a row whose lease another node has just taken re-reads it,
	// and the condition then leaves it out.
	take string
}

// leasedTable returns the lease statements of table, whose rows are keyed
// by account_id and key, that cond selects, returning columns.
func leasedTable(table, key, cond, columns string) leased {
	return leased{
		renew: `UPDATE ` + table + ` s SET lease_until = $2
			FROM (SELECT account_id, ` + key + ` FROM ` + table + ` WHERE lease_owner = $1 AND ` + cond + `
				ORDER BY account_id, ` + key + ` FOR NO KEY UPDATE) AS h
			WHERE s.account_id = h.account_id AND s.` + key + ` = h.` + key + `
			RETURNING ` + qualified("s", columns),
		take: `UPDATE ` + table + ` s SET lease_owner = $1, lease_until = $3
			FROM (SELECT account_id, ` + key + ` FROM ` + table + `
				WHERE ` + cond + ` AND lease_owner IS DISTINCT FROM $1 AND (lease_until IS NULL OR lease_until < $2)
				ORDER BY created_at, account_id, ` + key + `
				LIMIT $4 FOR NO KEY UPDATE SKIP LOCKED) AS f
			WHERE s.account_id = f.account_id AND s.` + key + ` = f.` + key + `
			RETURNING ` + qualified("s", columns),
	}
}

var (
	subscriptionLeases = leasedTable("subscriptions", "id", "state = 'active'", subscriptionColumns)
	workflowLeases     = leasedTable("workflows", "name", "true", workflowColumns)
	workLeases         = leasedTable("work", "id", "state = 'active'", workColumns)
)

// lease renews the leases owner holds in l's table and takes free rows
// until it holds max, all until now+ttl, in one transaction, and returns
// what it holds in the order of compare. Several nodes may call it at
// once: each free row goes to one of them. An owner whose max shrank
// keeps what it held.
func lease[T any](ctx context.Context, s *Store, l leased, scan func(scanner) (T, error), compare func(a, b T) int,
	owner string, now time.Time, ttl time.Duration, max int) ([]T, error) {
	if err := checkLease(owner, ttl, max); err != nil {
		return nil, err
	}
	until := now.Add(ttl)
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	rows, _ := tx.Query(ctx, l.renew, owner, until)
	held, err := collect(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	if len(held) < max {
		rows, _ := tx.Query(ctx, l.take, owner, now, until, max-len(held))
		taken, err := collect(rows, scan)
		if err != nil {
			return nil, fmt.Errorf("take: %w", err)
		}
		held = append(held, taken...)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	// RETURNING has no order.
	slices.SortFunc(held, compare)
	return held, nil
}

// releaseLeases gives owner's leases on the rows of tables up, so that
// other nodes take them at once instead of when they expire.
func (s *Store) releaseLeases(ctx context.Context, owner string, tables ...string) error {
	if !textOK(owner) {
		return nil // no such lease could have been taken
	}
	b := &pgx.Batch{}
	for _, table := range tables {
		b.Queue(`UPDATE `+table+` SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1`, owner)
	}
	return s.pool.SendBatch(ctx, b).Close()
}

// scanHeld scans row, whose first column is lease_owner, the rest into
// dest: lost if the row is gone or owner does not hold its lease.
func scanHeld(row pgx.Row, owner string, lost error, dest ...any) error {
	var held pgtype.Text
	err := row.Scan(append([]any{&held}, dest...)...)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && held.String != owner) {
		return lost
	}
	return err
}
