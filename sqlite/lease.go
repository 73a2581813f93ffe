package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/heraldhq/herald"
)

// Subscriptions, workflows and work jobs are leased alike: an owner holds
// a row until lease_until, renews what it holds and takes free rows, gives
// them up when it stops, and each save checks that it still holds the
// row. The helpers here are that, once for every table.

// checkLease validates the arguments of a lease call.
func checkLease(owner string, ttl time.Duration, max int) error {
	switch {
	case owner == "":
		return herald.Errorf(herald.EINVALID, "lease owner is required")
	case ttl <= 0:
		return herald.Errorf(herald.EINVALID, "lease ttl must be positive")
	case max <= 0:
		return herald.Errorf(herald.EINVALID, "max must be positive")
	}
	return nil
}

// leaseRows gives owner, in one transaction, the rows of table that cond
// selects which it holds, and free ones (never leased, released, or whose
// lease ran out before now), up to max in all, those it holds first, and
// extends each lease to now+ttl. It returns them in the order of compare.
// SQLite has one writer at a time: two owners never take the same row.
func leaseRows[T any](ctx context.Context, s *Store, table, cond, columns string, scan func(rowScanner) (T, error),
	compare func(a, b T) int, owner string, now time.Time, ttl time.Duration, max int) ([]T, error) {
	if err := checkLease(owner, ttl, max); err != nil {
		return nil, err
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	list, err := queryAll(ctx, tx, `UPDATE `+table+` SET lease_owner = ?1, lease_until = ?2
		WHERE rowid IN (SELECT rowid FROM `+table+`
			WHERE `+cond+` AND (lease_owner = ?1 OR lease_until IS NULL OR lease_until < ?3)
			ORDER BY lease_owner IS ?1 DESC, created_at, rowid LIMIT ?4)
		RETURNING `+columns,
		[]any{owner, micros(now.Add(ttl)), micros(now), max}, func(rows *sql.Rows) (T, error) { return scan(rows) })
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	// RETURNING gives rows in no set order.
	slices.SortFunc(list, compare)
	return list, nil
}

// releaseLeases gives owner's leases on the rows of tables up, in one
// transaction, so that another node may take them at once.
func (s *Store) releaseLeases(ctx context.Context, owner string, tables ...string) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, table := range tables {
		if _, err := tx.ExecContext(ctx, "UPDATE "+table+" SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", owner); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// leasedRow names a leased row in the errors that refuse a save by one
// that no longer holds it: lease lost: <owner> no longer <verb> <noun>
// "<id>".
type leasedRow struct{ noun, verb, id string }

// scanHeld scans row, whose first column is lease_owner, the rest into
// dest: ECONFLICT if the row is gone or owner does not hold its lease.
func (l leasedRow) scanHeld(row *sql.Row, owner string, dest ...any) error {
	var held sql.NullString
	err := row.Scan(append([]any{&held}, dest...)...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return herald.Errorf(herald.ECONFLICT, "lease lost: %s %q is gone", l.noun, l.id)
	case err != nil:
		return err
	case held.String != owner:
		return herald.Errorf(herald.ECONFLICT, "lease lost: %s no longer %s %s %q", owner, l.verb, l.noun, l.id)
	}
	return nil
}
