package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
)

// migrationStep returns what a migration needs done in Go, in its
// transaction, after its SQL: work that needs the domain's rules.
func migrationStep(version string) func(context.Context, pgx.Tx) error {
	switch version {
	case "0002_types_lifecycles_profiles":
		return trackStoredEvents
	}
	return nil
}

// trackStoredEvents builds the lifecycles and profiles of the events
// stored before Herald kept them (see herald.Tracker), so that an entity's
// profile counts all its events and not only the ones that came after the
// upgrade. Memory holds the lifecycles and profiles, not the events.
func trackStoredEvents(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT account_id, body, hash FROM events
		WHERE entity_id IS NOT NULL OR event_lifecycle_id IS NOT NULL ORDER BY account_id, seq`)
	if err != nil {
		return fmt.Errorf("read stored events: %w", err)
	}
	tracker := herald.NewTracker()
	var accountID, hash string
	var body []byte
	_, err = pgx.ForEachRow(rows, []any{&accountID, &body, &hash}, func() error {
		e, err := decodeEvent(accountID, body, hash)
		if err != nil {
			return err
		}
		return tracker.Add(e)
	})
	if err != nil {
		return fmt.Errorf("read stored events: %w", err)
	}
	b := &pgx.Batch{}
	if err := queueLifecycles(b, tracker.Lifecycles(), nil); err != nil {
		return err
	}
	if err := queueProfiles(b, tracker.Profiles(), nil); err != nil {
		return err
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store lifecycles and profiles: %w", err)
	}
	return nil
}
