package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/heraldhq/herald"
)

// migrationStep returns what a migration needs done in Go, in its
// transaction, after its SQL: work that needs the domain's rules.
func migrationStep(version string) func(context.Context, *sql.Tx) error {
	switch version {
	case "0002_types_lifecycles_profiles.sql":
		return trackStoredEvents
	}
	return nil
}

// trackStoredEvents builds the lifecycles and profiles of the events
// stored before Herald kept them (see herald.Tracker), so that an entity's
// profile counts all its events and not only the ones that came after the
// upgrade.
func trackStoredEvents(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT account_id, body FROM events
		WHERE entity_id IS NOT NULL OR event_lifecycle_id IS NOT NULL ORDER BY account_id, seq`)
	if err != nil {
		return fmt.Errorf("read stored events: %w", err)
	}
	defer rows.Close()
	tracker := herald.NewTracker()
	for rows.Next() {
		var accountID string
		var body []byte
		if err := rows.Scan(&accountID, &body); err != nil {
			return fmt.Errorf("read stored events: %w", err)
		}
		e, err := decodeEvent(accountID, body)
		if err != nil {
			return err
		}
		if err := tracker.Add(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stored events: %w", err)
	}
	rows.Close()

	for _, l := range tracker.Lifecycles() {
		args, err := lifecycleArgs(l)
		if err == nil {
			_, err = tx.ExecContext(ctx, upsertLifecycle, args...)
		}
		if err != nil {
			return fmt.Errorf("store lifecycle %s of %s: %w", l.ID, l.AccountID, err)
		}
	}
	for _, p := range tracker.Profiles() {
		args, err := profileArgs(p)
		if err == nil {
			_, err = tx.ExecContext(ctx, upsertProfile, args...)
		}
		if err != nil {
			return fmt.Errorf("store profile %s of %s: %w", p.ID, p.AccountID, err)
		}
	}
	return nil
}
