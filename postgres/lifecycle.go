package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
)

const lifecycleColumns = `account_id, id, category, type, status, terminal, entity_id,
	first_occurred_at, last_occurred_at, first_seq, last_seq, updated_at, event_count, redacted,
	history, data, data_stamps`

// The statements that write lifecycles as herald.PlanAppend left them,
// one for those it created and one for those AppendEvents read. Only
// AppendEvents writes lifecycles, under the account's lock, so the first
// never finds a row there already and the second always finds its row.
// Both take the arrays of lifecycleArrays.
const (
	lifecycleArraysSQL = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[],
		$7::text[], $8::timestamptz[], $9::timestamptz[], $10::bigint[], $11::bigint[], $12::timestamptz[],
		$13::bigint[], $14::boolean[], $15::text[], $16::text[], $17::text[])
		AS u (` + lifecycleColumns + `)`

	insertLifecyclesSQL = `INSERT INTO lifecycles (` + lifecycleColumns + `)
	SELECT account_id, id, category, type, NULLIF(status, ''), terminal, NULLIF(entity_id, ''),
		first_occurred_at, last_occurred_at, first_seq, last_seq, updated_at, event_count, redacted,
		history::json, NULLIF(data, '')::json, NULLIF(data_stamps, '')::json
	FROM ` + lifecycleArraysSQL

	updateLifecyclesSQL = `UPDATE lifecycles l SET
		status = NULLIF(u.status, ''), terminal = u.terminal, entity_id = NULLIF(u.entity_id, ''),
		first_occurred_at = u.first_occurred_at, last_occurred_at = u.last_occurred_at,
		first_seq = u.first_seq, last_seq = u.last_seq, updated_at = u.updated_at,
		event_count = u.event_count, redacted = u.redacted, history = u.history::json,
		data = NULLIF(u.data, '')::json, data_stamps = NULLIF(u.data_stamps, '')::json
	FROM ` + lifecycleArraysSQL + `
	WHERE l.account_id = u.account_id AND l.id = u.id`
)

// queueLifecycles queues the statements that write lifecycles; existing
// holds those that AppendEvents read.
func queueLifecycles(b *pgx.Batch, lifecycles []*herald.Lifecycle, existing map[herald.Ref]bool) error {
	var created, changed []*herald.Lifecycle
	for _, l := range lifecycles {
		if existing[herald.Ref{AccountID: l.AccountID, ID: l.ID}] {
			changed = append(changed, l)
		} else {
			created = append(created, l)
		}
	}
	for _, q := range []struct {
		sql        string
		lifecycles []*herald.Lifecycle
	}{{insertLifecyclesSQL, created}, {updateLifecyclesSQL, changed}} {
		if len(q.lifecycles) == 0 {
			continue
		}
		args, err := lifecycleArrays(q.lifecycles)
		if err != nil {
			return err
		}
		b.Queue(q.sql, args...)
	}
	return nil
}

// lifecycleArrays returns the arrays of lifecycleArraysSQL, a column
// each.
func lifecycleArrays(lifecycles []*herald.Lifecycle) ([]any, error) {
	n := len(lifecycles)
	var (
		cAccount, cID, cCategory, cType = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		cStatus, cEntity                = make([]string, n), make([]string, n)
		cTerminal, cRedacted            = make([]bool, n), make([]bool, n)
		cFirstAt, cLastAt, cUpdatedAt   = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		cFirstSeq, cLastSeq, cCount     = make([]int64, n), make([]int64, n), make([]int64, n)
		cHistory, cData, cStamps        = make([]string, n), make([]string, n), make([]string, n)
	)
	for i, l := range lifecycles {
		history, err := encodeJSON(l.History)
		if err != nil {
			return nil, fmt.Errorf("encode history of lifecycle %s: %w", l.ID, err)
		}
		// "" becomes NULL: no data, no stamps.
		var stamps []byte
		if len(l.DataStamps) > 0 {
			if stamps, err = encodeJSON(l.DataStamps); err != nil {
				return nil, fmt.Errorf("encode data stamps of lifecycle %s: %w", l.ID, err)
			}
		}
		cAccount[i], cID[i], cCategory[i], cType[i] = l.AccountID, l.ID, l.Category, l.Type
		cStatus[i], cTerminal[i], cEntity[i] = l.Status, l.Terminal, l.EntityID
		cFirstAt[i], cLastAt[i], cUpdatedAt[i] = l.FirstOccurredAt, l.LastOccurredAt, l.UpdatedAt
		cFirstSeq[i], cLastSeq[i], cCount[i], cRedacted[i] = l.FirstSeq, l.LastSeq, int64(l.EventCount), l.Redacted
		cHistory[i], cData[i], cStamps[i] = string(history), string(l.Data), string(stamps)
	}
	return []any{cAccount, cID, cCategory, cType, cStatus, cTerminal, cEntity,
		cFirstAt, cLastAt, cFirstSeq, cLastSeq, cUpdatedAt, cCount, cRedacted, cHistory, cData, cStamps}, nil
}

// scanner is a row, or rows at one row.
type scanner interface{ Scan(dest ...any) error }

// scanLifecycle reads a row of lifecycleColumns.
func scanLifecycle(row scanner) (*herald.Lifecycle, error) {
	var (
		l                     herald.Lifecycle
		status, entityID      *string
		history, data, stamps []byte
	)
	if err := row.Scan(&l.AccountID, &l.ID, &l.Category, &l.Type, &status, &l.Terminal, &entityID,
		&l.FirstOccurredAt, &l.LastOccurredAt, &l.FirstSeq, &l.LastSeq, &l.UpdatedAt, &l.EventCount, &l.Redacted,
		&history, &data, &stamps); err != nil {
		return nil, err
	}
	if status != nil {
		l.Status = *status
	}
	if entityID != nil {
		l.EntityID = *entityID
	}
	l.FirstOccurredAt, l.LastOccurredAt, l.UpdatedAt = l.FirstOccurredAt.UTC(), l.LastOccurredAt.UTC(), l.UpdatedAt.UTC()
	if err := json.Unmarshal(history, &l.History); err != nil {
		return nil, fmt.Errorf("decode history of lifecycle %s: %w", l.ID, err)
	}
	if l.History == nil {
		l.History = []herald.LifecycleStep{}
	}
	if len(data) > 0 {
		l.Data = data
	}
	// Apply records in DataStamps which event set each field: it must be a
	// map it can write to.
	l.DataStamps = map[string]herald.Stamp{}
	if len(stamps) > 0 {
		if err := json.Unmarshal(stamps, &l.DataStamps); err != nil {
			return nil, fmt.Errorf("decode data stamps of lifecycle %s: %w", l.ID, err)
		}
	}
	return &l, nil
}

// FindLifecycle returns the account's lifecycle id, or ENOTFOUND. Events
// are not filled.
func (s *Store) FindLifecycle(ctx context.Context, accountID, id string) (*herald.Lifecycle, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "lifecycle %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return nil, notFound // could not have been stored
	}
	l, err := scanLifecycle(s.pool.QueryRow(ctx,
		`SELECT `+lifecycleColumns+` FROM lifecycles WHERE account_id = $1 AND id = $2`, accountID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("find lifecycle %s: %w", id, err)
	}
	return l, nil
}

// FindLifecycles returns up to f.Limit of the account's lifecycles that
// match f, in the order they began (first_seq).
func (s *Store) FindLifecycles(ctx context.Context, accountID string, f herald.LifecycleFilter) ([]*herald.Lifecycle, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	q := newQuery(`SELECT `+lifecycleColumns+` FROM lifecycles WHERE account_id = $1`, accountID)
	none := !textOK(accountID) // a value no stored lifecycle can have
	for _, c := range []struct{ column, value string }{
		{"category", f.Category}, {"type", f.Type}, {"status", f.Status}, {"entity_id", f.EntityID},
	} {
		if c.value != "" {
			none = none || !textOK(c.value)
			q.where(c.column+" =", c.value)
		}
	}
	if none {
		return []*herald.Lifecycle{}, nil
	}
	if f.Terminal != nil {
		q.where("terminal =", *f.Terminal)
	}
	if !f.OccurredAfter.IsZero() {
		q.where("first_occurred_at >=", f.OccurredAfter)
	}
	if !f.OccurredBefore.IsZero() {
		q.where("first_occurred_at <", f.OccurredBefore)
	}
	if f.AfterSeq > 0 {
		q.where("first_seq >", f.AfterSeq)
	}
	q.orderLimit("first_seq", f.Limit)

	rows, _ := s.pool.Query(ctx, q.sql.String(), q.args...)
	lifecycles, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*herald.Lifecycle, error) {
		return scanLifecycle(row)
	})
	if err != nil {
		return nil, fmt.Errorf("find lifecycles: %w", err)
	}
	if lifecycles == nil {
		lifecycles = []*herald.Lifecycle{}
	}
	return lifecycles, nil
}
