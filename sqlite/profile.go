package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

const profileColumns = `id, first_seen_at, last_seen_at, event_count, first_seq, last_seq,
	created_at, updated_at, attributes, counts`

// upsertProfile writes a profile as herald.Profile.Apply left it; its
// arguments are profileArgs. An update leaves first_seq and created_at
// alone: they are those of the profile's first event, and later events
// have greater seqs. Not setting first_seq spares its index an update.
const upsertProfile = `INSERT INTO profiles (account_id, ` + profileColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (account_id, id) DO UPDATE SET
		first_seen_at = excluded.first_seen_at, last_seen_at = excluded.last_seen_at,
		event_count = excluded.event_count, last_seq = excluded.last_seq, updated_at = excluded.updated_at,
		attributes = excluded.attributes, counts = excluded.counts`

// profileArgs returns the arguments of upsertProfile for p.
func profileArgs(p *herald.Profile) ([]any, error) {
	attributes, err := encodeJSON(p.Attributes)
	if err != nil {
		return nil, fmt.Errorf("encode attributes: %w", err)
	}
	counts, err := encodeJSON(p.Counts)
	if err != nil {
		return nil, fmt.Errorf("encode counts: %w", err)
	}
	return []any{
		p.AccountID, p.ID, micros(p.FirstSeenAt), micros(p.LastSeenAt), p.EventCount, p.FirstSeq, p.LastSeq,
		micros(p.CreatedAt), micros(p.UpdatedAt), attributes, counts,
	}, nil
}

// scanProfile reads a row of profileColumns.
func scanProfile(row interface{ Scan(...any) error }, accountID string) (*herald.Profile, error) {
	p := &herald.Profile{AccountID: accountID}
	var (
		firstSeen, lastSeen, createdAt, updatedAt int64
		attributes, counts                        []byte
	)
	if err := row.Scan(&p.ID, &firstSeen, &lastSeen, &p.EventCount, &p.FirstSeq, &p.LastSeq,
		&createdAt, &updatedAt, &attributes, &counts); err != nil {
		return nil, err
	}
	p.FirstSeenAt, p.LastSeenAt = fromMicros(firstSeen), fromMicros(lastSeen)
	p.CreatedAt, p.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	if err := json.Unmarshal(attributes, &p.Attributes); err != nil {
		return nil, fmt.Errorf("decode attributes of profile %s: %w", p.ID, err)
	}
	if err := json.Unmarshal(counts, &p.Counts); err != nil {
		return nil, fmt.Errorf("decode counts of profile %s: %w", p.ID, err)
	}
	// Apply writes to both maps.
	if p.Attributes == nil {
		p.Attributes = map[string]herald.Attribute{}
	}
	if p.Counts == nil {
		p.Counts = map[string]int64{}
	}
	return p, nil
}

// FindProfile returns ENOTFOUND if the account has no such profile.
func (s *Store) FindProfile(ctx context.Context, accountID, id string) (*herald.Profile, error) {
	row := s.read.QueryRowContext(ctx, "SELECT "+profileColumns+" FROM profiles WHERE account_id = ? AND id = ?", accountID, id)
	p, err := scanProfile(row, accountID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "profile %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("find profile %s: %w", id, err)
	}
	return p, nil
}

// hasAttribute is the condition of ProfileFilter.Attribute and Value; its
// arguments are the attribute's name, then the value. Values compare as
// JSON (herald_json_equal), as PostgreSQL's jsonb does, not as text.
const hasAttribute = ` AND EXISTS (SELECT 1 FROM json_each(profiles.attributes) AS a
	WHERE a.key = ? AND herald_json_equal(a.value -> '$.value', ?))`

// FindProfiles returns up to f.Limit profiles of the account, in the order
// they were created (first_seq).
func (s *Store) FindProfiles(ctx context.Context, accountID string, f herald.ProfileFilter) ([]*herald.Profile, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	var q strings.Builder
	q.WriteString("SELECT " + profileColumns + " FROM profiles WHERE account_id = ?")
	args := []any{accountID}
	if !f.SeenAfter.IsZero() {
		q.WriteString(" AND last_seen_at >= ?")
		args = append(args, micros(f.SeenAfter))
	}
	if !f.SeenBefore.IsZero() {
		q.WriteString(" AND last_seen_at < ?")
		args = append(args, micros(f.SeenBefore))
	}
	if f.Attribute != "" && len(f.Value) > 0 {
		if !json.Valid(f.Value) {
			return nil, herald.Errorf(herald.EINVALID, "the value of attribute %q is not valid JSON", f.Attribute)
		}
		q.WriteString(hasAttribute)
		args = append(args, f.Attribute, string(f.Value))
	}
	if f.AfterSeq > 0 {
		q.WriteString(" AND first_seq > ?")
		args = append(args, f.AfterSeq)
	}
	q.WriteString(" ORDER BY first_seq LIMIT ?")
	args = append(args, f.Limit)

	profiles, err := queryAll(ctx, s.read, q.String(), args, func(rows *sql.Rows) (*herald.Profile, error) {
		return scanProfile(rows, accountID)
	})
	if err != nil {
		return nil, fmt.Errorf("find profiles: %w", err)
	}
	return profiles, nil
}

// eraseChunk is how many of the entity's events EraseProfile holds in
// memory at a time.
const eraseChunk = 500

// EraseProfile deletes the profile and redacts the entity's events and
// lifecycles in one transaction: see herald.ProfileService. Events that an
// earlier erasure redacted are not counted again. The lifecycles redacted
// are those of the entity and those any of its events joined, since an
// event's data merges into its lifecycle's whoever the lifecycle's entity
// is.
func (s *Store) EraseProfile(ctx context.Context, accountID, id string) (int64, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	defer tx.Rollback()

	res, err := tx.ExecContext(ctx, "DELETE FROM profiles WHERE account_id = ? AND id = ?", accountID, id)
	if err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	deleted, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	found, redacted, err := redactEvents(ctx, tx, accountID, id)
	if err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	if deleted == 0 && found == 0 {
		return 0, herald.Errorf(herald.ENOTFOUND, "profile %q not found", id)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE lifecycles SET data = NULL, data_stamps = NULL, redacted = 1
		WHERE account_id = ?1 AND (entity_id = ?2 OR id IN (
			SELECT event_lifecycle_id FROM events
			WHERE account_id = ?1 AND entity_id = ?2 AND event_lifecycle_id IS NOT NULL))`,
		accountID, id); err != nil {
		return 0, fmt.Errorf("erase profile %s: redact lifecycles: %w", id, err)
	}
	// The record of the erasure says what was erased, not what it held.
	e, err := herald.SystemEvent{
		AccountID: accountID, SubjectType: herald.SubjectEntity, SubjectID: id, Verb: herald.VerbDeleted,
		By: herald.ActorFrom(ctx), At: time.Now(),
		Notes:  "the entity's profile was erased and the personal data of its events redacted",
		Fields: map[string]any{"redactedEvents": redacted},
	}.Event()
	if err == nil {
		err = s.recordChange(ctx, tx, accountID, e)
	}
	if err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	return redacted, nil
}

// redactEvents rewrites the body of each of the entity's events without
// data and host, and marked redacted. It returns how many events the
// entity has and how many it rewrote.
func redactEvents(ctx context.Context, tx *sql.Tx, accountID, entityID string) (found, redacted int64, err error) {
	update, err := tx.PrepareContext(ctx, "UPDATE events SET body = ? WHERE account_id = ? AND seq = ?")
	if err != nil {
		return 0, 0, err
	}
	defer update.Close()
	var after int64
	for {
		chunk, err := entityEvents(ctx, tx, accountID, entityID, after)
		if err != nil {
			return 0, 0, err
		}
		for _, st := range chunk {
			e, err := decodeEvent(accountID, st.body)
			if err != nil {
				return 0, 0, fmt.Errorf("event seq %d: %w", st.seq, err)
			}
			if e.Redacted {
				continue
			}
			e.Data, e.Host, e.Redacted = nil, "", true
			body, err := herald.MarshalEvent(e)
			if err != nil {
				return 0, 0, fmt.Errorf("event %s: %w", e.ID, err)
			}
			if _, err := update.ExecContext(ctx, body, accountID, st.seq); err != nil {
				return 0, 0, fmt.Errorf("event %s: %w", e.ID, err)
			}
			redacted++
		}
		found += int64(len(chunk))
		if len(chunk) < eraseChunk {
			return found, redacted, nil
		}
		after = chunk[len(chunk)-1].seq
	}
}

// storedBody is an event's seq and stored JSON.
type storedBody struct {
	seq  int64
	body []byte
}

// entityEvents returns up to eraseChunk of the entity's events with seqs
// above after, by seq.
func entityEvents(ctx context.Context, tx *sql.Tx, accountID, entityID string, after int64) ([]storedBody, error) {
	rows, err := tx.QueryContext(ctx, `SELECT seq, body FROM events
		WHERE account_id = ? AND entity_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		accountID, entityID, after, eraseChunk)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var chunk []storedBody
	for rows.Next() {
		var e storedBody
		if err := rows.Scan(&e.seq, &e.body); err != nil {
			return nil, err
		}
		chunk = append(chunk, e)
	}
	return chunk, rows.Err()
}
