package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/heraldhq/herald"
)

// VerifyAudit walks the account's system events in seq order through
// herald.AuditVerifier, up to the first broken link, and checks the end of
// the chain against the head the account row keeps. One read transaction:
// the head and the events are of the same commit. ENOTFOUND if there is no
// such account.
func (s *Store) VerifyAudit(ctx context.Context, accountID string) (*herald.AuditReport, error) {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("verify audit of %s: %w", accountID, err)
	}
	defer tx.Rollback()

	var head sql.NullString
	err = tx.QueryRowContext(ctx, "SELECT audit_head FROM accounts WHERE id = ?", accountID).Scan(&head)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "account %q not found", accountID)
	case err != nil:
		return nil, fmt.Errorf("verify audit of %s: %w", accountID, err)
	}

	rows, err := tx.QueryContext(ctx, `SELECT seq, id, category, type, primary_id, body FROM events
		WHERE account_id = ? AND origin = 'system' ORDER BY seq`, accountID)
	if err != nil {
		return nil, fmt.Errorf("verify audit of %s: %w", accountID, err)
	}
	defer rows.Close()
	v := herald.NewAuditVerifier(accountID)
	for rows.Next() {
		var row herald.AuditRow
		var primaryID sql.NullString
		if err := rows.Scan(&row.Seq, &row.ID, &row.Category, &row.Type, &primaryID, &row.Body); err != nil {
			return nil, fmt.Errorf("verify audit of %s: %w", accountID, err)
		}
		row.PrimaryID = primaryID.String
		if !v.Check(row) {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verify audit of %s: %w", accountID, err)
	}
	return v.Finish(head.String), nil
}
