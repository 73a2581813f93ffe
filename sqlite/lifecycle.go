package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/heraldhq/herald"
)

const lifecycleColumns = `id, category, type, status, terminal, entity_id, first_occurred_at, last_occurred_at,
	first_seq, last_seq, updated_at, event_count, redacted, history, data, data_stamps`

// upsertLifecycle writes a lifecycle as herald.Lifecycle.Apply left it;
// its arguments are lifecycleArgs. An update leaves category, type and
// first_seq alone: Apply admits only events of the lifecycle's type, and
// later events have greater seqs. Not setting them spares their indexes
// an update.
const upsertLifecycle = `INSERT INTO lifecycles (account_id, ` + lifecycleColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (account_id, id) DO UPDATE SET
		status = excluded.status, terminal = excluded.terminal, entity_id = excluded.entity_id,
		first_occurred_at = excluded.first_occurred_at, last_occurred_at = excluded.last_occurred_at,
		last_seq = excluded.last_seq, updated_at = excluded.updated_at, event_count = excluded.event_count,
		redacted = excluded.redacted, history = excluded.history, data = excluded.data,
		data_stamps = excluded.data_stamps`

// lifecycleArgs returns the arguments of upsertLifecycle for l.
func lifecycleArgs(l *herald.Lifecycle) ([]any, error) {
	history, err := encodeJSON(l.History)
	if err != nil {
		return nil, fmt.Errorf("encode history: %w", err)
	}
	var data, stamps any
	if len(l.Data) > 0 {
		data = string(l.Data)
	}
	if len(l.DataStamps) > 0 {
		if stamps, err = encodeJSON(l.DataStamps); err != nil {
			return nil, fmt.Errorf("encode data stamps: %w", err)
		}
	}
	return []any{
		l.AccountID, l.ID, l.Category, l.Type, nullIfEmpty(l.Status), l.Terminal, nullIfEmpty(l.EntityID),
		micros(l.FirstOccurredAt), micros(l.LastOccurredAt), l.FirstSeq, l.LastSeq, micros(l.UpdatedAt),
		l.EventCount, l.Redacted, history, data, stamps,
	}, nil
}

// scanLifecycle reads a row of lifecycleColumns.
func scanLifecycle(row interface{ Scan(...any) error }, accountID string) (*herald.Lifecycle, error) {
	l := &herald.Lifecycle{AccountID: accountID}
	var (
		status, entityID           sql.NullString
		firstAt, lastAt, updatedAt int64
		history, data, stamps      []byte
	)
	if err := row.Scan(&l.ID, &l.Category, &l.Type, &status, &l.Terminal, &entityID, &firstAt, &lastAt,
		&l.FirstSeq, &l.LastSeq, &updatedAt, &l.EventCount, &l.Redacted, &history, &data, &stamps); err != nil {
		return nil, err
	}
	l.Status, l.EntityID = status.String, entityID.String
	l.FirstOccurredAt, l.LastOccurredAt, l.UpdatedAt = fromMicros(firstAt), fromMicros(lastAt), fromMicros(updatedAt)
	if err := json.Unmarshal(history, &l.History); err != nil {
		return nil, fmt.Errorf("decode history of lifecycle %s: %w", l.ID, err)
	}
	if l.History == nil {
		l.History = []herald.LifecycleStep{}
	}
	if len(data) > 0 {
		l.Data = data
	}
	// Apply records in DataStamps which event set each field: it must be
	// a map it can write to.
	l.DataStamps = map[string]herald.Stamp{}
	if len(stamps) > 0 {
		if err := json.Unmarshal(stamps, &l.DataStamps); err != nil {
			return nil, fmt.Errorf("decode data stamps of lifecycle %s: %w", l.ID, err)
		}
	}
	return l, nil
}

// FindLifecycle returns ENOTFOUND if the account has no such lifecycle.
func (s *Store) FindLifecycle(ctx context.Context, accountID, id string) (*herald.Lifecycle, error) {
	row := s.read.QueryRowContext(ctx, "SELECT "+lifecycleColumns+" FROM lifecycles WHERE account_id = ? AND id = ?", accountID, id)
	l, err := scanLifecycle(row, accountID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "lifecycle %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("find lifecycle %s: %w", id, err)
	}
	return l, nil
}

// FindLifecycles returns up to f.Limit lifecycles of the account, in the
// order they began (first_seq).
func (s *Store) FindLifecycles(ctx context.Context, accountID string, f herald.LifecycleFilter) ([]*herald.Lifecycle, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	var q strings.Builder
	q.WriteString("SELECT " + lifecycleColumns + " FROM lifecycles WHERE account_id = ?")
	args := []any{accountID}
	for _, c := range []struct{ column, value string }{
		{"category", f.Category}, {"type", f.Type}, {"status", f.Status}, {"entity_id", f.EntityID},
	} {
		if c.value != "" {
			q.WriteString(" AND " + c.column + " = ?")
			args = append(args, c.value)
		}
	}
	if f.Terminal != nil {
		q.WriteString(" AND terminal = ?")
		args = append(args, *f.Terminal)
	}
	if !f.OccurredAfter.IsZero() {
		q.WriteString(" AND first_occurred_at >= ?")
		args = append(args, micros(f.OccurredAfter))
	}
	if !f.OccurredBefore.IsZero() {
		q.WriteString(" AND first_occurred_at < ?")
		args = append(args, micros(f.OccurredBefore))
	}
	if f.AfterSeq > 0 {
		q.WriteString(" AND first_seq > ?")
		args = append(args, f.AfterSeq)
	}
	q.WriteString(" ORDER BY first_seq LIMIT ?")
	args = append(args, f.Limit)

	lifecycles, err := queryAll(ctx, s.read, q.String(), args, func(rows *sql.Rows) (*herald.Lifecycle, error) {
		return scanLifecycle(rows, accountID)
	})
	if err != nil {
		return nil, fmt.Errorf("find lifecycles: %w", err)
	}
	return lifecycles, nil
}

// querier is a pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryAll returns what scan makes of each row of a query.
func queryAll[T any](ctx context.Context, db querier, query string, args []any, scan func(*sql.Rows) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		x, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}
