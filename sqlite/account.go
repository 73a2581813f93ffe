package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// CreateAccount stores a and its first key in one transaction. The key is
// stored as a's: firstKey.AccountID is set to a.ID.
func (s *Store) CreateAccount(ctx context.Context, a *herald.Account, firstKey *herald.APIKey) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	defer tx.Rollback()

	_, err = tx.ExecContext(ctx, "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)",
		a.ID, a.Name, micros(a.CreatedAt))
	switch {
	case isUniqueViolation(err):
		return herald.Errorf(herald.ECONFLICT, "account %q already exists", a.ID)
	case err != nil:
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	now := time.Now()
	created, err := herald.ChangeEvent(ctx, a.ID, herald.SubjectAccount, a.ID, herald.VerbCreated, now, nil, a)
	if err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	events := []*herald.Event{created}
	if firstKey != nil {
		firstKey.AccountID = a.ID
		if err := insertKey(ctx, tx, firstKey); err != nil {
			return err
		}
		e, err := herald.ChangeEvent(ctx, a.ID, herald.SubjectAPIKey, firstKey.ID, herald.VerbCreated, now, nil, firstKey)
		if err != nil {
			return fmt.Errorf("create account %s: %w", a.ID, err)
		}
		events = append(events, e)
	}
	if err := s.recordChange(ctx, tx, a.ID, events...); err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	return nil
}

// FindAccountByID returns ENOTFOUND if there is no such account.
func (s *Store) FindAccountByID(ctx context.Context, id string) (*herald.Account, error) {
	a := &herald.Account{ID: id}
	var createdAt int64
	err := s.read.QueryRowContext(ctx, "SELECT name, created_at FROM accounts WHERE id = ?", id).
		Scan(&a.Name, &createdAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "account %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("find account %s: %w", id, err)
	}
	a.CreatedAt = fromMicros(createdAt)
	return a, nil
}

// CreateKey stores k. ECONFLICT if its id or hash is taken, ENOTFOUND if
// its account does not exist.
func (s *Store) CreateKey(ctx context.Context, k *herald.APIKey) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	defer tx.Rollback()
	if err := insertKey(ctx, tx, k); err != nil {
		return err
	}
	e, err := herald.ChangeEvent(ctx, k.AccountID, herald.SubjectAPIKey, k.ID, herald.VerbCreated, time.Now(), nil, k)
	if err == nil {
		err = s.recordChange(ctx, tx, k.AccountID, e)
	}
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	return nil
}

func insertKey(ctx context.Context, tx *sql.Tx, k *herald.APIKey) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, account_id, name, prefix, hash, scopes, bootstrap, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.AccountID, k.Name, k.Prefix, k.Hash, strings.Join(k.Scopes, ","), k.Bootstrap, micros(k.CreatedAt))
	switch {
	case isUniqueViolation(err):
		return herald.Errorf(herald.ECONFLICT, "key %q or its secret already exists", k.ID)
	case isForeignKeyViolation(err):
		return herald.Errorf(herald.ENOTFOUND, "account %q not found", k.AccountID)
	case err != nil:
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	return nil
}

const keyColumns = "id, account_id, name, prefix, hash, scopes, bootstrap, created_at"

func scanKey(row interface{ Scan(...any) error }) (*herald.APIKey, error) {
	k := &herald.APIKey{}
	var scopes string
	var createdAt int64
	if err := row.Scan(&k.ID, &k.AccountID, &k.Name, &k.Prefix, &k.Hash, &scopes, &k.Bootstrap, &createdAt); err != nil {
		return nil, err
	}
	k.Scopes = []string{}
	if scopes != "" {
		k.Scopes = strings.Split(scopes, ",")
	}
	k.CreatedAt = fromMicros(createdAt)
	return k, nil
}

// FindKeyByHash returns ENOTFOUND if no key has that hash.
func (s *Store) FindKeyByHash(ctx context.Context, hash string) (*herald.APIKey, error) {
	k, err := scanKey(s.read.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE hash = ?", hash))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "no key has this secret")
	case err != nil:
		return nil, fmt.Errorf("find key by hash: %w", err)
	}
	return k, nil
}

// FindKeys returns the account's keys, oldest first.
func (s *Store) FindKeys(ctx context.Context, accountID string) ([]*herald.APIKey, error) {
	rows, err := s.read.QueryContext(ctx,
		"SELECT "+keyColumns+" FROM api_keys WHERE account_id = ? ORDER BY created_at, rowid", accountID)
	if err != nil {
		return nil, fmt.Errorf("find keys of %s: %w", accountID, err)
	}
	defer rows.Close()
	keys := []*herald.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("find keys of %s: %w", accountID, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find keys of %s: %w", accountID, err)
	}
	return keys, nil
}

// DeleteKey returns ENOTFOUND if the account has no such key.
func (s *Store) DeleteKey(ctx context.Context, accountID, id string) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	defer tx.Rollback()
	k, err := scanKey(tx.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE account_id = ? AND id = ?", accountID, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return herald.Errorf(herald.ENOTFOUND, "key %q not found", id)
	case err != nil:
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM api_keys WHERE account_id = ? AND id = ?", accountID, id); err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	e, err := herald.ChangeEvent(ctx, accountID, herald.SubjectAPIKey, id, herald.VerbDeleted, time.Now(), k, nil)
	if err == nil {
		err = s.recordChange(ctx, tx, accountID, e)
	}
	if err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	return nil
}
