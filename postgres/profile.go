package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
)

const profileColumns = `account_id, id, first_seen_at, last_seen_at, event_count, first_seq, last_seq,
	created_at, updated_at, attributes, counts`

// The statements that write profiles as herald.PlanAppend left them: as
// for lifecycles, one for those it created and one for those AppendEvents
// read. EraseProfile deletes profiles, but under the same lock. Both take
// the arrays of profileArrays.
const (
	profileArraysSQL = `unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[],
		$6::bigint[], $7::bigint[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[])
		AS u (` + profileColumns + `)`

	insertProfilesSQL = `INSERT INTO profiles (` + profileColumns + `)
	SELECT account_id, id, first_seen_at, last_seen_at, event_count, first_seq, last_seq,
		created_at, updated_at, attributes::json, counts::json
	FROM ` + profileArraysSQL

	updateProfilesSQL = `UPDATE profiles p SET
		first_seen_at = u.first_seen_at, last_seen_at = u.last_seen_at, event_count = u.event_count,
		first_seq = u.first_seq, last_seq = u.last_seq, created_at = u.created_at, updated_at = u.updated_at,
		attributes = u.attributes::json, counts = u.counts::json
	FROM ` + profileArraysSQL + `
	WHERE p.account_id = u.account_id AND p.id = u.id`
)

// queueProfiles queues the statements that write profiles; existing holds
// those that AppendEvents read.
func queueProfiles(b *pgx.Batch, profiles []*herald.Profile, existing map[herald.Ref]bool) error {
	var created, changed []*herald.Profile
	for _, p := range profiles {
		if existing[herald.Ref{AccountID: p.AccountID, ID: p.ID}] {
			changed = append(changed, p)
		} else {
			created = append(created, p)
		}
	}
	for _, q := range []struct {
		sql      string
		profiles []*herald.Profile
	}{{insertProfilesSQL, created}, {updateProfilesSQL, changed}} {
		if len(q.profiles) == 0 {
			continue
		}
		args, err := profileArrays(q.profiles)
		if err != nil {
			return err
		}
		b.Queue(q.sql, args...)
	}
	return nil
}

// profileArrays returns the arrays of profileArraysSQL, a column each.
func profileArrays(profiles []*herald.Profile) ([]any, error) {
	n := len(profiles)
	var (
		cAccount, cID                                 = make([]string, n), make([]string, n)
		cFirstSeen, cLastSeen, cCreatedAt, cUpdatedAt = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		cCount, cFirstSeq, cLastSeq                   = make([]int64, n), make([]int64, n), make([]int64, n)
		cAttributes, cCounts                          = make([]string, n), make([]string, n)
	)
	for i, p := range profiles {
		attributes, err := encodeJSON(p.Attributes)
		if err != nil {
			return nil, fmt.Errorf("encode attributes of profile %s: %w", p.ID, err)
		}
		counts, err := encodeJSON(p.Counts)
		if err != nil {
			return nil, fmt.Errorf("encode counts of profile %s: %w", p.ID, err)
		}
		cAccount[i], cID[i] = p.AccountID, p.ID
		cFirstSeen[i], cLastSeen[i], cCreatedAt[i], cUpdatedAt[i] = p.FirstSeenAt, p.LastSeenAt, p.CreatedAt, p.UpdatedAt
		cCount[i], cFirstSeq[i], cLastSeq[i] = p.EventCount, p.FirstSeq, p.LastSeq
		cAttributes[i], cCounts[i] = string(attributes), string(counts)
	}
	return []any{cAccount, cID, cFirstSeen, cLastSeen, cCount, cFirstSeq, cLastSeq,
		cCreatedAt, cUpdatedAt, cAttributes, cCounts}, nil
}

// scanProfile reads a row of profileColumns.
func scanProfile(row scanner) (*herald.Profile, error) {
	var (
		p                  herald.Profile
		attributes, counts []byte
	)
	if err := row.Scan(&p.AccountID, &p.ID, &p.FirstSeenAt, &p.LastSeenAt, &p.EventCount, &p.FirstSeq, &p.LastSeq,
		&p.CreatedAt, &p.UpdatedAt, &attributes, &counts); err != nil {
		return nil, err
	}
	p.FirstSeenAt, p.LastSeenAt = p.FirstSeenAt.UTC(), p.LastSeenAt.UTC()
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
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
	return &p, nil
}

// FindProfile returns the account's profile id, or ENOTFOUND.
func (s *Store) FindProfile(ctx context.Context, accountID, id string) (*herald.Profile, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "profile %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return nil, notFound // could not have been stored
	}
	p, err := scanProfile(s.pool.QueryRow(ctx,
		`SELECT `+profileColumns+` FROM profiles WHERE account_id = $1 AND id = $2`, accountID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("find profile %s: %w", id, err)
	}
	return p, nil
}

// FindProfiles returns up to f.Limit of the account's profiles that match
// f, in the order they were created (first_seq).
//
// Attribute values are compared as jsonb compares them: numbers by value
// (1 and 1.0 are equal), strings after their escapes are decoded, objects
// whatever their key order and white space. checkAttributes made sure at
// ingest that every stored value converts to jsonb.
func (s *Store) FindProfiles(ctx context.Context, accountID string, f herald.ProfileFilter) ([]*herald.Profile, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	if f.Attribute != "" && len(f.Value) > 0 && !json.Valid(f.Value) {
		return nil, herald.Errorf(herald.EINVALID, "the value of attribute %q is not valid JSON", f.Attribute)
	}
	if !textOK(accountID) {
		return []*herald.Profile{}, nil // could not have been stored
	}
	q := newQuery(`SELECT `+profileColumns+` FROM profiles WHERE account_id = $1`, accountID)
	if !f.SeenAfter.IsZero() {
		q.where("last_seen_at >=", f.SeenAfter)
	}
	if !f.SeenBefore.IsZero() {
		q.where("last_seen_at <", f.SeenBefore)
	}
	if f.Attribute != "" && len(f.Value) > 0 {
		if !textOK(f.Attribute) || !utf8.Valid(f.Value) || jsonbProblem(f.Value) != "" {
			return []*herald.Profile{}, nil // no stored value can be it
		}
		q.and("(attributes -> " + q.param(f.Attribute) + "::text -> 'value')::jsonb = " +
			q.param(string(f.Value)) + "::text::jsonb")
	}
	if f.AfterSeq > 0 {
		q.where("first_seq >", f.AfterSeq)
	}
	q.orderLimit("first_seq", f.Limit)

	rows, _ := s.pool.Query(ctx, q.sql.String(), q.args...)
	profiles, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*herald.Profile, error) {
		return scanProfile(row)
	})
	if err != nil {
		return nil, fmt.Errorf("find profiles: %w", err)
	}
	if profiles == nil {
		profiles = []*herald.Profile{}
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
// event's data merges into its lifecycle whoever the lifecycle's entity is.
//
// It takes the account's row lock that AppendEvents takes, and reads after
// it, so that an append of the entity's events is either wholly before the
// erasure, and erased, or wholly after it. It writes the system event
// entity deleted in the same commit.
func (s *Store) EraseProfile(ctx context.Context, accountID, id string) (int64, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "profile %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return 0, notFound // could not have been stored
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	st, err := lockAccount(ctx, tx, accountID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return 0, notFound
	} else if err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM profiles WHERE account_id = $1 AND id = $2`, accountID, id)
	if err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	found, redacted, err := redactEvents(ctx, tx, accountID, id)
	if err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 && found == 0 {
		return 0, notFound
	}
	if _, err := tx.Exec(ctx, `UPDATE lifecycles SET data = NULL, data_stamps = NULL, redacted = true
		WHERE account_id = $1 AND (entity_id = $2 OR id IN (
			SELECT event_lifecycle_id FROM events
			WHERE account_id = $1 AND entity_id = $2 AND event_lifecycle_id IS NOT NULL))`,
		accountID, id); err != nil {
		return 0, fmt.Errorf("erase profile %s: redact lifecycles: %w", id, err)
	}
	// The record of the erasure says what was erased, not what it held.
	// System events have no entity, so an erasure never redacts one, which
	// would break the audit chain.
	e, err := herald.SystemEvent{
		AccountID: accountID, SubjectType: herald.SubjectEntity, SubjectID: id, Verb: herald.VerbDeleted,
		By: herald.ActorFrom(ctx), At: time.Now(),
		Notes:  "the entity's profile was erased and the personal data of its events redacted",
		Fields: map[string]any{"redactedEvents": redacted},
	}.Event()
	if err == nil {
		err = recordChange(ctx, tx, st, accountID, e)
	}
	if err != nil {
		return 0, fmt.Errorf("erase profile %s: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("erase profile %s: commit: %w", id, err)
	}
	return redacted, nil
}

// redactEvents rewrites the body of each of the entity's events without
// data and host, and marked redacted, a chunk at a time. It returns how
// many events the entity has and how many it rewrote.
func redactEvents(ctx context.Context, tx pgx.Tx, accountID, entityID string) (found, redacted int64, err error) {
	var after int64
	for {
		rows, _ := tx.Query(ctx, `SELECT seq, body FROM events
			WHERE account_id = $1 AND entity_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
			accountID, entityID, after, eraseChunk)
		var (
			seq    int64
			body   []byte
			seqs   []int64
			bodies [][]byte
			n      int
		)
		_, err := pgx.ForEachRow(rows, []any{&seq, &body}, func() error {
			n++
			after = seq
			e, err := decodeEvent(accountID, body, "")
			if err != nil {
				return fmt.Errorf("event seq %d: %w", seq, err)
			}
			if e.Redacted {
				return nil
			}
			e.Data, e.Host, e.Redacted = nil, "", true
			redactedBody, err := herald.MarshalEvent(e)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			seqs, bodies = append(seqs, seq), append(bodies, redactedBody)
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
		if len(seqs) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE events SET body = u.body
				FROM unnest($2::bigint[], $3::bytea[]) AS u (seq, body)
				WHERE events.account_id = $1 AND events.seq = u.seq`, accountID, seqs, bodies); err != nil {
				return 0, 0, fmt.Errorf("rewrite events: %w", err)
			}
		}
		found, redacted = found+int64(n), redacted+int64(len(seqs))
		if n < eraseChunk {
			return found, redacted, nil
		}
	}
}

// checkAttributes returns an EINVALID error if a value that e persists to
// its profile is one that PostgreSQL cannot read as JSON: then the json
// operators that FindProfiles uses would fail on the profile. e's status
// persists for its type.
func checkAttributes(e *herald.Event) error {
	if len(e.Def.ProfileFields) == 0 {
		if d := jsonbProblem(e.Data); d != "" {
			return herald.FieldErrorf("/data", "%s", d)
		}
		return nil
	}
	for _, f := range e.Def.ProfileFields {
		v, ok := herald.ResolvePointer(e.Data, strings.TrimPrefix(f, "/data"))
		if !ok {
			continue
		}
		if !textOK(f) {
			return herald.FieldErrorf("/data", "the profile field %q of type %s must be valid UTF-8 without the NUL character", f, e.Def.Key())
		}
		if d := jsonbProblem(v); d != "" {
			return herald.FieldErrorf(f, "%s", d)
		}
	}
	return nil
}

// PostgreSQL's numeric, which jsonb holds numbers in, keeps at most
// numericMaxDigits digits before the decimal point and numericMaxScale
// after it; numericMaxExponent bounds the exponent it reads.
const (
	numericMaxDigits   = 131072
	numericMaxScale    = 16383
	numericMaxExponent = 1<<30 - 1 // INT_MAX / 2
)

// jsonbProblem returns why PostgreSQL cannot read the valid JSON v as
// jsonb, or "": a string (or key) holding \u0000 or an unpaired surrogate
// escape, or a number beyond numeric's range.
func jsonbProblem(v []byte) string {
	for i := 0; i < len(v); {
		switch c := v[i]; {
		case c == '"':
			i++
			for i < len(v) && v[i] != '"' {
				if v[i] != '\\' {
					i++
					continue
				}
				if i+1 < len(v) && v[i+1] != 'u' {
					i += 2
					continue
				}
				r, ok := hex4(v[i+2:])
				switch {
				case !ok:
					return "holds a malformed \\u escape"
				case r == 0:
					return "holds \\u0000, which PostgreSQL cannot store as text"
				case utf16.IsSurrogate(r):
					if r >= 0xdc00 || len(v) < i+12 || v[i+6] != '\\' || v[i+7] != 'u' {
						return fmt.Sprintf("holds \\u%04x, half of a surrogate pair without its other half", r)
					}
					if r2, ok := hex4(v[i+8:]); !ok || utf16.DecodeRune(r, r2) == 0xfffd {
						return fmt.Sprintf("holds \\u%04x, half of a surrogate pair without its other half", r)
					}
					i += 12
				default:
					i += 6
				}
			}
			i++ // the closing quote
		case c == '-' || '0' <= c && c <= '9':
			j := i + 1
			for j < len(v) && strings.IndexByte("0123456789.eE+-", v[j]) >= 0 {
				j++
			}
			if !numericFits(string(v[i:j])) {
				n := string(v[i:j])
				if len(n) > 40 {
					n = n[:37] + "..."
				}
				return fmt.Sprintf("holds the number %s, beyond the range of PostgreSQL's numeric", n)
			}
			i = j
		default:
			i++
		}
	}
	return ""
}

// hex4 decodes the four hex digits that start b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(n), err == nil
}

// numericFits reports whether PostgreSQL's numeric can hold the JSON
// number n, by the rules of its input function: the exponent must be
// under numericMaxExponent, the digits after the point (less the
// exponent) at most numericMaxScale, and a value other than zero must have
// at most numericMaxDigits before the point.
func numericFits(n string) bool {
	n = strings.TrimPrefix(n, "-")
	mantissa, exp := n, int64(0)
	if k := strings.IndexAny(n, "eE"); k >= 0 {
		mantissa = n[:k]
		e, err := strconv.ParseInt(strings.TrimPrefix(n[k+1:], "+"), 10, 64)
		if err != nil || e >= numericMaxExponent || e <= -numericMaxExponent {
			return false
		}
		exp = e
	}
	whole, frac, _ := strings.Cut(mantissa, ".")
	if int64(len(frac))-exp > numericMaxScale {
		return false
	}
	digits := whole + frac
	first := strings.IndexFunc(digits, func(r rune) bool { return r != '0' })
	if first < 0 {
		return true // zero
	}
	// The power of ten of the first digit that is not zero.
	power := int64(len(whole)-1-first) + exp
	return power < numericMaxDigits
}
