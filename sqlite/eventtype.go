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

// scanEventType reads a row of category, type, definition, created_at,
// updated_at. The columns, not the JSON, hold the names and times.
func scanEventType(row interface{ Scan(...any) error }, accountID string) (*herald.EventType, error) {
	var (
		category, typ        string
		definition           []byte
		createdAt, updatedAt int64
	)
	if err := row.Scan(&category, &typ, &definition, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	t := &herald.EventType{}
	if err := json.Unmarshal(definition, t); err != nil {
		return nil, fmt.Errorf("decode event type %s/%s: %w", category, typ, err)
	}
	t.AccountID, t.Category, t.Type = accountID, category, typ
	t.CreatedAt, t.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	return t, nil
}

const eventTypeColumns = "category, type, definition, created_at, updated_at"

// FindEventTypes returns the account's stored types, by category and type.
func (s *Store) FindEventTypes(ctx context.Context, accountID string) ([]*herald.EventType, error) {
	rows, err := s.read.QueryContext(ctx, "SELECT "+eventTypeColumns+" FROM event_types WHERE account_id = ? ORDER BY category, type", accountID)
	if err != nil {
		return nil, fmt.Errorf("find event types of %s: %w", accountID, err)
	}
	defer rows.Close()
	types := []*herald.EventType{}
	for rows.Next() {
		t, err := scanEventType(rows, accountID)
		if err != nil {
			return nil, fmt.Errorf("find event types of %s: %w", accountID, err)
		}
		types = append(types, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find event types of %s: %w", accountID, err)
	}
	return types, nil
}

// FindEventType returns ENOTFOUND if the account stores no such type.
func (s *Store) FindEventType(ctx context.Context, accountID, category, typ string) (*herald.EventType, error) {
	row := s.read.QueryRowContext(ctx, "SELECT "+eventTypeColumns+" FROM event_types WHERE account_id = ? AND category = ? AND type = ?",
		accountID, category, typ)
	t, err := scanEventType(row, accountID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "event type %s/%s not found", category, typ)
	case err != nil:
		return nil, fmt.Errorf("find event type %s/%s: %w", category, typ, err)
	}
	return t, nil
}

// PutEventType creates or replaces t and reports whether it created it.
// It sets t.CreatedAt to the stored one on replace; a zero UpdatedAt
// becomes now, and a zero CreatedAt on create becomes UpdatedAt.
// ECONFLICT if another category of the account has a type of the same
// name, ENOTFOUND if the account does not exist.
func (s *Store) PutEventType(ctx context.Context, t *herald.EventType) (created bool, err error) {
	return s.putEventType(ctx, t, true)
}

// CreateEventType stores t, which must be new: see herald.EventTypeService.
func (s *Store) CreateEventType(ctx context.Context, t *herald.EventType) error {
	_, err := s.putEventType(ctx, t, false)
	return err
}

// putEventType is PutEventType, or CreateEventType when replace is false.
// The write transaction holds SQLite's write lock from its start, so the
// check that the type is new cannot be overtaken.
func (s *Store) putEventType(ctx context.Context, t *herald.EventType, replace bool) (created bool, err error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("put event type %s: %w", t.Key(), err)
	}
	defer tx.Rollback()

	updatedAt := t.UpdatedAt
	if updatedAt.IsZero() {
		updatedAt = time.Now()
	}
	updatedAt = updatedAt.UTC().Truncate(time.Microsecond)
	before, err := scanEventType(tx.QueryRowContext(ctx, "SELECT "+eventTypeColumns+
		" FROM event_types WHERE account_id = ? AND category = ? AND type = ?",
		t.AccountID, t.Category, t.Type), t.AccountID)
	var createdAt time.Time
	switch {
	case errors.Is(err, sql.ErrNoRows):
		created, createdAt = true, t.CreatedAt
		if createdAt.IsZero() {
			createdAt = updatedAt
		}
		createdAt = createdAt.UTC().Truncate(time.Microsecond)
	case err != nil:
		return false, fmt.Errorf("put event type %s: %w", t.Key(), err)
	case !replace:
		return false, herald.Errorf(herald.ECONFLICT, "event type %s already exists", t.Key())
	default:
		createdAt = before.CreatedAt
	}

	def := *t
	def.CreatedAt, def.UpdatedAt = createdAt, updatedAt
	definition, err := encodeJSON(&def)
	if err != nil {
		return false, fmt.Errorf("put event type %s: encode: %w", t.Key(), err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO event_types (account_id, category, type, definition, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (account_id, category, type) DO UPDATE SET
			definition = excluded.definition, updated_at = excluded.updated_at`,
		t.AccountID, t.Category, t.Type, definition, micros(createdAt), micros(updatedAt))
	switch {
	case isUniqueViolation(err):
		// The one other unique key: the type's name, in another category.
		var other string
		if qerr := tx.QueryRowContext(ctx, "SELECT category FROM event_types WHERE account_id = ? AND type = ?",
			t.AccountID, t.Type).Scan(&other); qerr != nil {
			return false, fmt.Errorf("put event type %s: %w", t.Key(), qerr)
		}
		return false, herald.Errorf(herald.ECONFLICT,
			"type %q is already defined in category %q: type names must be unique, since the schema is served as %s",
			t.Type, other, t.SchemaName())
	case isForeignKeyViolation(err):
		return false, herald.Errorf(herald.ENOTFOUND, "account %q not found", t.AccountID)
	case err != nil:
		return false, fmt.Errorf("put event type %s: %w", t.Key(), err)
	}
	var change *herald.Event
	if created {
		change, err = herald.ChangeEvent(ctx, t.AccountID, herald.SubjectEventType, t.Key(), herald.VerbCreated, time.Now(), nil, &def)
	} else {
		change, err = herald.ChangeEvent(ctx, t.AccountID, herald.SubjectEventType, t.Key(), herald.VerbUpdated, time.Now(), before, &def)
	}
	if err == nil {
		err = s.recordChange(ctx, tx, t.AccountID, change)
	}
	if err != nil {
		return false, fmt.Errorf("put event type %s: %w", t.Key(), err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("put event type %s: %w", t.Key(), err)
	}
	t.CreatedAt, t.UpdatedAt = createdAt, updatedAt
	return created, nil
}

// DeleteEventType returns ENOTFOUND if the account stores no such type.
// Events of the type are kept.
func (s *Store) DeleteEventType(ctx context.Context, accountID, category, typ string) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	}
	defer tx.Rollback()
	before, err := scanEventType(tx.QueryRowContext(ctx, "SELECT "+eventTypeColumns+
		" FROM event_types WHERE account_id = ? AND category = ? AND type = ?", accountID, category, typ), accountID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return herald.Errorf(herald.ENOTFOUND, "event type %s/%s not found", category, typ)
	case err != nil:
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM event_types WHERE account_id = ? AND category = ? AND type = ?",
		accountID, category, typ); err != nil {
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	}
	e, err := herald.ChangeEvent(ctx, accountID, herald.SubjectEventType, before.Key(), herald.VerbDeleted, time.Now(), before, nil)
	if err == nil {
		err = s.recordChange(ctx, tx, accountID, e)
	}
	if err != nil {
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	}
	return nil
}

// FindSettings returns the account's settings, herald.DefaultSettings if
// it has changed none, and ENOTFOUND if there is no such account.
func (s *Store) FindSettings(ctx context.Context, accountID string) (*herald.Settings, error) {
	return findSettings(ctx, s.read, accountID)
}

// findSettings reads the account's settings with q, decoded over the
// defaults: a setting added after these were stored takes its default.
func findSettings(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, accountID string) (*herald.Settings, error) {
	var stored sql.NullString
	err := q.QueryRowContext(ctx, "SELECT settings FROM accounts WHERE id = ?", accountID).Scan(&stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "account %q not found", accountID)
	case err != nil:
		return nil, fmt.Errorf("find settings of %s: %w", accountID, err)
	}
	var b []byte
	if stored.Valid {
		b = []byte(stored.String)
	}
	settings, err := herald.DecodeSettings(b)
	if err != nil {
		return nil, fmt.Errorf("decode settings of %s: %w", accountID, err)
	}
	return settings, nil
}

// PutSettings replaces the account's settings and writes the settings
// updated system event in the same commit. ENOTFOUND if there is no such
// account.
func (s *Store) PutSettings(ctx context.Context, accountID string, settings *herald.Settings) error {
	encoded, err := encodeJSON(settings)
	if err != nil {
		return fmt.Errorf("put settings of %s: encode: %w", accountID, err)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put settings of %s: %w", accountID, err)
	}
	defer tx.Rollback()
	before, err := findSettings(ctx, tx, accountID)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE accounts SET settings = ? WHERE id = ?", encoded, accountID); err != nil {
		return fmt.Errorf("put settings of %s: %w", accountID, err)
	}
	e, err := herald.ChangeEvent(ctx, accountID, herald.SubjectSettings, accountID, herald.VerbUpdated, time.Now(), before, settings)
	if err == nil {
		err = s.recordChange(ctx, tx, accountID, e)
	}
	if err != nil {
		return fmt.Errorf("put settings of %s: %w", accountID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put settings of %s: %w", accountID, err)
	}
	return nil
}
