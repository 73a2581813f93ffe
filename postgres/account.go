package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald"
)

// CreateAccount stores a and, in the same transaction, its first key and
// the system events account created and apikey created.
func (s *Store) CreateAccount(ctx context.Context, a *herald.Account, firstKey *herald.APIKey) error {
	if err := checkFields("/id", a.ID, "/name", a.Name); err != nil {
		return err
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	_, err = tx.Exec(ctx, `INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)`,
		a.ID, a.Name, a.CreatedAt)
	if _, ok := isUniqueViolation(err); ok {
		return herald.Errorf(herald.ECONFLICT, "account %q already exists", a.ID)
	} else if err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	// The new row is this transaction's alone: the lock waits for no one.
	st, err := lockAccount(ctx, tx, a.ID)
	if err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	now := time.Now()
	created, err := herald.ChangeEvent(ctx, a.ID, herald.SubjectAccount, a.ID, herald.VerbCreated, now, nil, a)
	if err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	events := []*herald.Event{created}
	if firstKey != nil {
		if err := insertKey(ctx, tx, firstKey); err != nil {
			return err
		}
		e, err := herald.ChangeEvent(ctx, a.ID, herald.SubjectAPIKey, firstKey.ID, herald.VerbCreated, now, nil, firstKey)
		if err != nil {
			return fmt.Errorf("create account %s: %w", a.ID, err)
		}
		events = append(events, e)
	}
	if err := recordChange(ctx, tx, st, a.ID, events...); err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create account %s: commit: %w", a.ID, err)
	}
	return nil
}

// begin begins an API change's transaction. READ COMMITTED whatever the
// server's default, as in AppendEvents: the reads that follow the
// account's lock must see what earlier holders of the lock committed.
func (s *Store) begin(ctx context.Context) (pgx.Tx, error) {
	return s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
}

// FindAccountByID returns the account, or ENOTFOUND.
func (s *Store) FindAccountByID(ctx context.Context, id string) (*herald.Account, error) {
	if !textOK(id) {
		return nil, herald.Errorf(herald.ENOTFOUND, "account %q not found", id)
	}
	var a herald.Account
	err := s.pool.QueryRow(ctx, `SELECT id, name, created_at FROM accounts WHERE id = $1`, id).
		Scan(&a.ID, &a.Name, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, herald.Errorf(herald.ENOTFOUND, "account %q not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("find account %s: %w", id, err)
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return &a, nil
}

// CreateKey stores k and, in the same transaction, the system event
// apikey created.
func (s *Store) CreateKey(ctx context.Context, k *herald.APIKey) error {
	if !textOK(k.AccountID) {
		return herald.Errorf(herald.ENOTFOUND, "account %q not found", k.AccountID)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	st, err := lockAccount(ctx, tx, k.AccountID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return err
	} else if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	if err := insertKey(ctx, tx, k); err != nil {
		return err
	}
	e, err := herald.ChangeEvent(ctx, k.AccountID, herald.SubjectAPIKey, k.ID, herald.VerbCreated, time.Now(), nil, k)
	if err == nil {
		err = recordChange(ctx, tx, st, k.AccountID, e)
	}
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create key %s: commit: %w", k.ID, err)
	}
	return nil
}

// execer is what insertKey needs of a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func insertKey(ctx context.Context, db execer, k *herald.APIKey) error {
	if err := checkFields("/id", k.ID, "/accountId", k.AccountID, "/name", k.Name, "/prefix", k.Prefix, "/hash", k.Hash); err != nil {
		return err
	}
	for _, scope := range k.Scopes {
		if err := checkFields("/scopes", scope); err != nil {
			return err
		}
	}
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{} // NOT NULL: pgx sends a nil slice as NULL
	}
	_, err := db.Exec(ctx, `INSERT INTO api_keys (id, account_id, name, prefix, hash, scopes, bootstrap, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.ID, k.AccountID, k.Name, k.Prefix, k.Hash, scopes, k.Bootstrap, k.CreatedAt)
	if constraint, ok := isUniqueViolation(err); ok {
		if constraint == "api_keys_pkey" {
			return herald.Errorf(herald.ECONFLICT, "key id %q is taken", k.ID)
		}
		return herald.Errorf(herald.ECONFLICT, "a key with the same secret already exists")
	}
	if isForeignKeyViolation(err) {
		return herald.Errorf(herald.ENOTFOUND, "account %q not found", k.AccountID)
	}
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	return nil
}

const keyColumns = `id, account_id, name, prefix, hash, scopes, bootstrap, created_at`

func scanKey(row pgx.CollectableRow) (*herald.APIKey, error) {
	var k herald.APIKey
	if err := row.Scan(&k.ID, &k.AccountID, &k.Name, &k.Prefix, &k.Hash, &k.Scopes, &k.Bootstrap, &k.CreatedAt); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return &k, nil
}

// FindKeyByHash returns the key whose secret hashes to hash, or ENOTFOUND.
func (s *Store) FindKeyByHash(ctx context.Context, hash string) (*herald.APIKey, error) {
	if !textOK(hash) {
		return nil, herald.Errorf(herald.ENOTFOUND, "key not found")
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, hash)
	k, err := pgx.CollectExactlyOneRow(rows, scanKey)
	if errors.Is(err, pgx.ErrNoRows) {
		// Not the hash: it is a credential.
		return nil, herald.Errorf(herald.ENOTFOUND, "key not found")
	} else if err != nil {
		return nil, fmt.Errorf("find key by hash: %w", err)
	}
	return k, nil
}

// FindKeys returns the account's keys, oldest first.
func (s *Store) FindKeys(ctx context.Context, accountID string) ([]*herald.APIKey, error) {
	if !textOK(accountID) {
		return []*herald.APIKey{}, nil
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE account_id = $1 ORDER BY created_at, id`, accountID)
	keys, err := pgx.CollectRows(rows, scanKey)
	if err != nil {
		return nil, fmt.Errorf("find keys of account %s: %w", accountID, err)
	}
	return keys, nil
}

// DeleteKey deletes the account's key id and, in the same transaction,
// writes the system event apikey deleted; ENOTFOUND if there is no such
// key.
func (s *Store) DeleteKey(ctx context.Context, accountID, id string) error {
	notFound := herald.Errorf(herald.ENOTFOUND, "key %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return notFound
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	st, err := lockAccount(ctx, tx, accountID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return notFound
	} else if err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	rows, _ := tx.Query(ctx, `DELETE FROM api_keys WHERE account_id = $1 AND id = $2 RETURNING `+keyColumns, accountID, id)
	k, err := pgx.CollectExactlyOneRow(rows, scanKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound
	} else if err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	e, err := herald.ChangeEvent(ctx, accountID, herald.SubjectAPIKey, id, herald.VerbDeleted, time.Now(), k, nil)
	if err == nil {
		err = recordChange(ctx, tx, st, accountID, e)
	}
	if err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("delete key %s: commit: %w", id, err)
	}
	return nil
}

// checkFields takes pairs of JSON Pointer and value, and returns an
// EINVALID error naming the first value that PostgreSQL's text refuses.
func checkFields(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !textOK(pairs[i+1]) {
			return herald.FieldErrorf(pairs[i], "must be valid UTF-8 without the NUL character")
		}
	}
	return nil
}
