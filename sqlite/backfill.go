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
// stored before Herald kept them, by the rules AppendEvents follows, so
// that an entity's profile counts all its events and not only the ones
// that came after the upgrade. No type was registered then: the events
// are applied as of unregistered types, and an event that the rules would
// not let join its lifecycle (of another type) stays out of it.
func trackStoredEvents(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT account_id, body FROM events
		WHERE entity_id IS NOT NULL OR event_lifecycle_id IS NOT NULL ORDER BY account_id, seq`)
	if err != nil {
		return fmt.Errorf("read stored events: %w", err)
	}
	defer rows.Close()
	var (
		lifecycles = map[herald.Ref]*herald.Lifecycle{}
		profiles   = map[herald.Ref]*herald.Profile{}
		orderL     []*herald.Lifecycle
		orderP     []*herald.Profile
	)
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
		if e.EventLifecycleID != "" {
			ref := herald.Ref{AccountID: accountID, ID: e.EventLifecycleID}
			l := lifecycles[ref]
			if l == nil {
				l = herald.NewLifecycle(accountID, e.EventLifecycleID)
			}
			switch err := l.Apply(e, nil); {
			case err == nil && lifecycles[ref] == nil:
				lifecycles[ref] = l
				orderL = append(orderL, l)
			case err != nil && herald.ErrorCode(err) != herald.EINVALID:
				return fmt.Errorf("event %s of %s: %w", e.ID, accountID, err)
			}
		}
		if id := e.EntityID(); id != "" {
			ref := herald.Ref{AccountID: accountID, ID: id}
			p := profiles[ref]
			if p == nil {
				p = herald.NewProfile(accountID, id)
				profiles[ref] = p
				orderP = append(orderP, p)
			}
			if err := p.Apply(e, nil); err != nil {
				return fmt.Errorf("event %s of %s: %w", e.ID, accountID, err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stored events: %w", err)
	}
	rows.Close()

	for _, l := range orderL {
		args, err := lifecycleArgs(l)
		if err == nil {
			_, err = tx.ExecContext(ctx, upsertLifecycle, args...)
		}
		if err != nil {
			return fmt.Errorf("store lifecycle %s of %s: %w", l.ID, l.AccountID, err)
		}
	}
	for _, p := range orderP {
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
