package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
)

const eventTypeColumns = `category, type, definition, created_at, updated_at`

// scanEventType reads a row of eventTypeColumns. The columns, not the
// definition, hold the names and times.
func scanEventType(row scanner, accountID string) (*herald.EventType, error) {
	var (
		category, typ        string
		definition           []byte
		createdAt, updatedAt time.Time
	)
	if err := row.Scan(&category, &typ, &definition, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	t := &herald.EventType{}
	if err := json.Unmarshal(definition, t); err != nil {
		return nil, fmt.Errorf("decode event type %s/%s: %w", category, typ, err)
	}
	t.AccountID, t.Category, t.Type = accountID, category, typ
	t.CreatedAt, t.UpdatedAt = createdAt.UTC(), updatedAt.UTC()
	return t, nil
}

// FindEventTypes returns the account's stored types, by category and type.
func (s *Store) FindEventTypes(ctx context.Context, accountID string) ([]*herald.EventType, error) {
	if !textOK(accountID) {
		return []*herald.EventType{}, nil
	}
	// COLLATE "C": byte order, as SQLite sorts, whatever the database's
	// collation.
	rows, _ := s.pool.Query(ctx, `SELECT `+eventTypeColumns+` FROM event_types WHERE account_id = $1
		ORDER BY category COLLATE "C", type COLLATE "C"`, accountID)
	types, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*herald.EventType, error) {
		return scanEventType(row, accountID)
	})
	if err != nil {
		return nil, fmt.Errorf("find event types of %s: %w", accountID, err)
	}
	if types == nil {
		types = []*herald.EventType{}
	}
	return types, nil
}

// FindEventType returns ENOTFOUND if the account stores no such type.
func (s *Store) FindEventType(ctx context.Context, accountID, category, typ string) (*herald.EventType, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "event type %s/%s not found", category, typ)
	if !textOK(accountID) || !textOK(category) || !textOK(typ) {
		return nil, notFound // could not have been stored
	}
	t, err := scanEventType(s.pool.QueryRow(ctx, `SELECT `+eventTypeColumns+` FROM event_types
		WHERE account_id = $1 AND category = $2 AND type = $3`, accountID, category, typ), accountID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
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

// upsertEventTypeSQL stores a type's definition, new or not.
const upsertEventTypeSQL = `INSERT INTO event_types (account_id, category, type, definition, created_at, updated_at)
	VALUES ($1, $2, $3, $4::text::json, $5, $6)
	ON CONFLICT (account_id, category, type) DO UPDATE SET
		definition = EXCLUDED.definition, updated_at = EXCLUDED.updated_at`

// putEventType is PutEventType, or CreateEventType when replace is false.
// It holds the account's lock, as AppendEvents does, from before it reads
// the stored type to the commit: two changes of one type cannot cross,
// and the system event's before is what the change replaced.
func (s *Store) putEventType(ctx context.Context, t *herald.EventType, replace bool) (created bool, err error) {
	if !textOK(t.AccountID) {
		return false, herald.Errorf(herald.ENOTFOUND, "account %q not found", t.AccountID)
	}
	if err := checkFields("/category", t.Category, "/type", t.Type); err != nil {
		return false, err
	}
	updatedAt := t.UpdatedAt
	if updatedAt.IsZero() {
		updatedAt = time.Now()
	}
	updatedAt = updatedAt.UTC().Truncate(time.Microsecond)
	createdAt := t.CreatedAt
	if createdAt.IsZero() {
		createdAt = updatedAt
	}
	createdAt = createdAt.UTC().Truncate(time.Microsecond)

	def := *t
	def.CreatedAt, def.UpdatedAt = time.Time{}, time.Time{} // the columns hold them
	definition, err := encodeJSON(&def)
	if err != nil {
		return false, fmt.Errorf("put event type %s: encode: %w", t.Key(), err)
	}
	// json is text: Go's encoder makes strings valid UTF-8, but copies the
	// schema as it is.
	if !utf8.Valid(definition) {
		return false, herald.FieldErrorf("/schema", "must be valid UTF-8")
	}

	tx, err := s.begin(ctx)
	if err != nil {
		return false, fmt.Errorf("put event type %s: %w", t.Key(), err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	st, err := lockAccount(ctx, tx, t.AccountID)
	if err != nil {
		return false, err
	}
	before, err := scanEventType(tx.QueryRow(ctx, `SELECT `+eventTypeColumns+` FROM event_types
		WHERE account_id = $1 AND category = $2 AND type = $3`, t.AccountID, t.Category, t.Type), t.AccountID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		before = nil
	case err != nil:
		return false, fmt.Errorf("put event type %s: %w", t.Key(), err)
	case !replace:
		return false, herald.Errorf(herald.ECONFLICT, "event type %s already exists", t.Key())
	default:
		createdAt = before.CreatedAt // kept on replace
	}
	_, err = tx.Exec(ctx, upsertEventTypeSQL,
		t.AccountID, t.Category, t.Type, string(definition), createdAt, updatedAt)
	if constraint, ok := isUniqueViolation(err); ok && constraint == "event_types_type_key" {
		// Give the connection back before taking another, so that
		// changes that fail together cannot drain the pool.
		_ = tx.Rollback(ctx)
		return false, s.typeNameTaken(ctx, t)
	} else if err != nil {
		return false, fmt.Errorf("put event type %s: %w", t.Key(), err)
	}

	after := def
	after.CreatedAt, after.UpdatedAt = createdAt, updatedAt
	var change *herald.Event
	if before == nil {
		change, err = herald.ChangeEvent(ctx, t.AccountID, herald.SubjectEventType, t.Key(), herald.VerbCreated, time.Now(), nil, &after)
	} else {
		change, err = herald.ChangeEvent(ctx, t.AccountID, herald.SubjectEventType, t.Key(), herald.VerbUpdated, time.Now(), before, &after)
	}
	if err == nil {
		err = recordChange(ctx, tx, st, t.AccountID, change)
	}
	if err != nil {
		return false, fmt.Errorf("put event type %s: %w", t.Key(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("put event type %s: commit: %w", t.Key(), err)
	}
	t.CreatedAt, t.UpdatedAt = createdAt, updatedAt
	return before == nil, nil
}

// typeNameTaken returns the ECONFLICT error of PutEventType(t) when
// another category of the account has a type named t.Type.
func (s *Store) typeNameTaken(ctx context.Context, t *herald.EventType) error {
	var other string
	err := s.pool.QueryRow(ctx, `SELECT category FROM event_types WHERE account_id = $1 AND type = $2`,
		t.AccountID, t.Type).Scan(&other)
	if errors.Is(err, pgx.ErrNoRows) {
		// Deleted since: the caller may try again.
		return herald.Errorf(herald.ECONFLICT, "type %q was being defined in another category at the same time", t.Type)
	} else if err != nil {
		return fmt.Errorf("put event type %s: %w", t.Key(), err)
	}
	return herald.Errorf(herald.ECONFLICT,
		"type %q is already defined in category %q: type names must be unique, since the schema is served as %s",
		t.Type, other, t.SchemaName())
}

// DeleteEventType deletes the type and, in the same transaction, writes
// the system event eventtype deleted; ENOTFOUND if the account stores no
// such type. Events of the type are kept.
func (s *Store) DeleteEventType(ctx context.Context, accountID, category, typ string) error {
	notFound := herald.Errorf(herald.ENOTFOUND, "event type %s/%s not found", category, typ)
	if !textOK(accountID) || !textOK(category) || !textOK(typ) {
		return notFound
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	st, err := lockAccount(ctx, tx, accountID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return notFound
	} else if err != nil {
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	}
	before, err := scanEventType(tx.QueryRow(ctx, `DELETE FROM event_types
		WHERE account_id = $1 AND category = $2 AND type = $3 RETURNING `+eventTypeColumns,
		accountID, category, typ), accountID)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound
	} else if err != nil {
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	}
	e, err := herald.ChangeEvent(ctx, accountID, herald.SubjectEventType, before.Key(), herald.VerbDeleted, time.Now(), before, nil)
	if err == nil {
		err = recordChange(ctx, tx, st, accountID, e)
	}
	if err != nil {
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("delete event type %s/%s: commit: %w", category, typ, err)
	}
	return nil
}

// FindSettings returns the account's settings, herald.DefaultSettings if
// it has changed none, and ENOTFOUND if there is no such account.
func (s *Store) FindSettings(ctx context.Context, accountID string) (*herald.Settings, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "account %q not found", accountID)
	if !textOK(accountID) {
		return nil, notFound
	}
	var stored []byte
	err := s.pool.QueryRow(ctx, `SELECT settings FROM accounts WHERE id = $1`, accountID).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("find settings of %s: %w", accountID, err)
	}
	// Decoded over the defaults: a setting added after these were stored
	// takes its default value.
	settings, err := herald.DecodeSettings(stored)
	if err != nil {
		return nil, fmt.Errorf("decode settings of %s: %w", accountID, err)
	}
	return settings, nil
}

// PutSettings replaces the account's settings and, in the same
// transaction, writes the system event settings updated. ENOTFOUND if
// there is no such account.
func (s *Store) PutSettings(ctx context.Context, accountID string, settings *herald.Settings) error {
	notFound := herald.Errorf(herald.ENOTFOUND, "account %q not found", accountID)
	if !textOK(accountID) {
		return notFound
	}
	encoded, err := encodeJSON(settings)
	if err != nil {
		return fmt.Errorf("put settings of %s: encode: %w", accountID, err)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("put settings of %s: %w", accountID, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	st, err := lockAccount(ctx, tx, accountID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return notFound
	} else if err != nil {
		return fmt.Errorf("put settings of %s: %w", accountID, err)
	}
	// The lock read them, decoded over the defaults.
	before := st.Settings[accountID]
	if before == nil {
		before = herald.DefaultSettings()
	}
	if _, err := tx.Exec(ctx, `UPDATE accounts SET settings = $2::text::json WHERE id = $1`, accountID, string(encoded)); err != nil {
		return fmt.Errorf("put settings of %s: %w", accountID, err)
	}
	e, err := herald.ChangeEvent(ctx, accountID, herald.SubjectSettings, accountID, herald.VerbUpdated, time.Now(), before, settings)
	if err == nil {
		err = recordChange(ctx, tx, st, accountID, e)
	}
	if err != nil {
		return fmt.Errorf("put settings of %s: %w", accountID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("put settings of %s: commit: %w", accountID, err)
	}
	return nil
}
