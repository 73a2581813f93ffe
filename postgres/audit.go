package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
)

// auditChunk is how many system events VerifyAudit reads in one query.
const auditChunk = 1000

// VerifyAudit walks the account's system events in seq order through
// herald.AuditVerifier, up to the first broken link, and checks the end of
// the chain against the head the account row keeps. ENOTFOUND if there is
// no such account.
//
// It reads the head with last_seq, then the system events up to that seq,
// a chunk at a time: the commit that moved the head also moved last_seq,
// and every event up to last_seq had committed by then, so the events
// read are those the head was computed over, however many appends commit
// meanwhile, and the walk holds no snapshot open for long.
func (s *Store) VerifyAudit(ctx context.Context, accountID string) (*herald.AuditReport, error) {
	if !textOK(accountID) {
		return nil, herald.Errorf(herald.ENOTFOUND, "account %q not found", accountID)
	}
	var (
		head    *string
		lastSeq int64
	)
	err := s.pool.QueryRow(ctx, `SELECT audit_head, last_seq FROM accounts WHERE id = $1`, accountID).Scan(&head, &lastSeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, herald.Errorf(herald.ENOTFOUND, "account %q not found", accountID)
	} else if err != nil {
		return nil, fmt.Errorf("verify audit of %s: %w", accountID, err)
	}

	v := herald.NewAuditVerifier(accountID)
	var after int64
	for {
		rows, err := s.pool.Query(ctx, `SELECT seq, id, category, type, COALESCE(primary_id, ''), body FROM events
			WHERE account_id = $1 AND origin = 'system' AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`,
			accountID, after, lastSeq, auditChunk)
		if err != nil {
			return nil, fmt.Errorf("verify audit of %s: %w", accountID, err)
		}
		var (
			row     herald.AuditRow
			n       int
			stopped bool
		)
		_, err = pgx.ForEachRow(rows, []any{&row.Seq, &row.ID, &row.Category, &row.Type, &row.PrimaryID, &row.Body}, func() error {
			n++
			after = row.Seq
			if !v.Check(row) {
				stopped = true
				return errStop
			}
			return nil
		})
		if err != nil && !stopped {
			return nil, fmt.Errorf("verify audit of %s: %w", accountID, err)
		}
		if stopped || n < auditChunk {
			break
		}
	}
	var h string
	if head != nil {
		h = *head
	}
	return v.Finish(h), nil
}

// errStop ends a walk of rows early.
var errStop = errors.New("stop")
