package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald"
)

var (
	_ herald.WorkService = (*Store)(nil)
	_ herald.WorkQueue   = (*Store)(nil)
)

const workColumns = "account_id, id, kind, definition, secret, state, state_reason, runtime, run_now_at, created_at, updated_at"

// scanWork reads a row of workColumns.
func scanWork(row rowScanner) (*herald.Work, error) {
	var (
		w                    herald.Work
		definition, runtime  []byte
		reason               sql.NullString
		runNowAt             sql.NullInt64
		createdAt, updatedAt int64
	)
	var accountID, id, kind, secret, state string
	if err := row.Scan(&accountID, &id, &kind, &definition, &secret, &state, &reason, &runtime, &runNowAt, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(definition, &w); err != nil {
		return nil, fmt.Errorf("decode work job %s: %w", id, err)
	}
	if err := json.Unmarshal(runtime, &w.Runtime); err != nil {
		return nil, fmt.Errorf("decode runtime of work job %s: %w", id, err)
	}
	w.AccountID, w.ID, w.Kind, w.Secret, w.State, w.StateReason = accountID, id, kind, secret, state, reason.String
	w.RunNowAt, w.CreatedAt, w.UpdatedAt = timePtr(runNowAt), fromMicros(createdAt), fromMicros(updatedAt)
	return &w, nil
}

// findWork reads the job with q: ENOTFOUND if the account has none of
// that id.
func findWork(ctx context.Context, q rowQuerier, accountID, id string) (*herald.Work, error) {
	w, err := scanWork(q.QueryRowContext(ctx, "SELECT "+workColumns+" FROM work WHERE account_id = ? AND id = ?", accountID, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "work job %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("find work job %s: %w", id, err)
	}
	return w, nil
}

// CreateWork stores w, and its system event, in one transaction, with
// the runtime that w.PrepareCreate gives it from the account's last seq,
// read under the write lock. A Secret left empty is made. w gets the
// stored state, runtime, times and secret. ECONFLICT if the account has a
// job of that id, ENOTFOUND if there is no such account.
func (s *Store) CreateWork(ctx context.Context, w *herald.Work) error {
	switch {
	case w.ID == "":
		return herald.Errorf(herald.EINVALID, "work job id is required")
	case w.State != "" && !herald.ValidWorkState(w.State):
		return herald.Errorf(herald.EINVALID, "work job %s: unknown state %q", w.ID, w.State)
	}
	c := *w
	err := s.inWrite(ctx, "create work job "+w.ID, w.AccountID, func(tx *sql.Tx) ([]*herald.Event, error) {
		lastSeq, err := accountLastSeq(ctx, tx, c.AccountID)
		if err != nil {
			return nil, err
		}
		at := timeNow()
		prepareWork(&c, lastSeq, at)
		definition, runtime, err := encodeWork(&c)
		if err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO work (account_id, id, kind, definition, secret, state, state_reason, runtime,
				run_now_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.AccountID, c.ID, c.Kind, definition, c.Secret, c.State, nullIfEmpty(c.StateReason), runtime,
			nullTime(c.RunNowAt), micros(c.CreatedAt), micros(c.UpdatedAt))
		if isUniqueViolation(err) {
			return nil, herald.Errorf(herald.ECONFLICT, "work job %q already exists", c.ID)
		} else if err != nil {
			return nil, err
		}
		return one(herald.ChangeEvent(ctx, c.AccountID, herald.SubjectWork, c.ID, herald.VerbCreated, at, nil, &c))
	})
	if err != nil {
		return err
	}
	*w = c
	return nil
}

// prepareWork settles what a new job starts from: its state (active
// unless given), a secret, its runtime and times (Work.PrepareCreate).
func prepareWork(w *herald.Work, lastSeq int64, now time.Time) {
	if w.State == "" {
		w.State = herald.WorkActive
	}
	if w.Secret == "" {
		w.Secret = herald.NewSigningSecret()
	}
	w.PrepareCreate(lastSeq, now)
	if w.RunNowAt != nil {
		t := w.RunNowAt.UTC().Truncate(time.Microsecond)
		w.RunNowAt = &t
	}
}

// encodeWork returns the definition and runtime columns of w.
func encodeWork(w *herald.Work) (definition, runtime string, err error) {
	if definition, err = definitionColumn(w); err != nil {
		return "", "", fmt.Errorf("encode: %w", err)
	}
	if runtime, err = encodeJSON(&w.Runtime); err != nil {
		return "", "", fmt.Errorf("encode runtime: %w", err)
	}
	return definition, runtime, nil
}

// FindWork returns ENOTFOUND if the account has no such job.
func (s *Store) FindWork(ctx context.Context, accountID, id string) (*herald.Work, error) {
	return findWork(ctx, s.read, accountID, id)
}

// FindWorks returns the account's jobs of kind ("" for all), oldest
// first.
func (s *Store) FindWorks(ctx context.Context, accountID, kind string) ([]*herald.Work, error) {
	query, args := "SELECT "+workColumns+" FROM work WHERE account_id = ?", []any{accountID}
	if kind != "" {
		query += " AND kind = ?"
		args = append(args, kind)
	}
	list, err := queryAll(ctx, s.read, query+" ORDER BY created_at, id", args,
		func(rows *sql.Rows) (*herald.Work, error) { return scanWork(rows) })
	if err != nil {
		return nil, fmt.Errorf("find work jobs of %s: %w", accountID, err)
	}
	return list, nil
}

// UpdateWork replaces the definition of w (name, filter, export, alert)
// and keeps the rest: kind, state, runtime, secret, lease and times. w
// gets the stored job. ENOTFOUND if there is none.
func (s *Store) UpdateWork(ctx context.Context, w *herald.Work) error {
	var after herald.Work
	err := changeRow(ctx, s, "update work job", w.AccountID, w.ID, findWork, func(tx *sql.Tx, before *herald.Work) (*herald.Event, error) {
		after = *w
		keepWorkState(&after, before, timeNow())
		if err := replaceDefinition(ctx, tx, "work", "id", after.AccountID, after.ID, &after, after.UpdatedAt); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, after.AccountID, herald.SubjectWork, after.ID, herald.VerbUpdated, after.UpdatedAt, before, &after)
	})
	if err != nil {
		return err
	}
	*w = after
	return nil
}

// keepWorkState gives w, a job as a client sent it, what an update keeps
// of before.
func keepWorkState(w, before *herald.Work, now time.Time) {
	w.Kind, w.Secret, w.State, w.StateReason = before.Kind, before.Secret, before.State, before.StateReason
	w.Runtime, w.RunNowAt, w.CreatedAt, w.UpdatedAt = before.Runtime, before.RunNowAt, before.CreatedAt, now
}

// SetWorkState moves the job to state, with reason, and writes its system
// event (updated). Resuming it (active) clears the reason and leaves the
// runtime as it is: a failed job tries its cycle again. Any other state
// frees its lease, so that its holder's next save is refused, and ends
// its series of cycles. A call that changes nothing writes nothing.
// ENOTFOUND if there is none, EINVALID for an unknown state.
func (s *Store) SetWorkState(ctx context.Context, accountID, id, state, reason string) error {
	if !herald.ValidWorkState(state) {
		return herald.Errorf(herald.EINVALID, "unknown work job state %q", state)
	}
	return changeRow(ctx, s, "set state of work job", accountID, id, findWork, func(tx *sql.Tx, before *herald.Work) (*herald.Event, error) {
		after := *before
		if !after.ChangeState(state, reason, timeNow()) {
			return nil, nil
		}
		runtime, err := encodeJSON(&after.Runtime)
		if err != nil {
			return nil, fmt.Errorf("encode runtime: %w", err)
		}
		query := "UPDATE work SET state = ?, state_reason = ?, runtime = ?, updated_at = ?"
		if state != herald.WorkActive {
			query += ", lease_owner = NULL, lease_until = NULL"
		}
		if _, err := tx.ExecContext(ctx, query+" WHERE account_id = ? AND id = ?",
			state, nullIfEmpty(after.StateReason), runtime, micros(after.UpdatedAt), accountID, id); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, accountID, herald.SubjectWork, id, herald.VerbUpdated, after.UpdatedAt, before, &after)
	})
}

// RunWorkNow sets the job's RunNowAt to at, quietly: it writes no system
// event (the cycle it asks for writes its own). ENOTFOUND if there is
// none.
func (s *Store) RunWorkNow(ctx context.Context, accountID, id string, at time.Time) error {
	res, err := s.write.ExecContext(ctx, "UPDATE work SET run_now_at = ? WHERE account_id = ? AND id = ?", micros(at), accountID, id)
	if err != nil {
		return fmt.Errorf("run work job %s now: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("run work job %s now: %w", id, err)
	} else if n == 0 {
		return herald.Errorf(herald.ENOTFOUND, "work job %q not found", id)
	}
	return nil
}

// DeleteWork removes the job with its history and writes its system
// event. ENOTFOUND if there is none.
func (s *Store) DeleteWork(ctx context.Context, accountID, id string) error {
	return changeRow(ctx, s, "delete work job", accountID, id, findWork, func(tx *sql.Tx, before *herald.Work) (*herald.Event, error) {
		if _, err := tx.ExecContext(ctx, "DELETE FROM work_records WHERE account_id = ? AND work_id = ?", accountID, id); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM work WHERE account_id = ? AND id = ?", accountID, id); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, accountID, herald.SubjectWork, id, herald.VerbDeleted, timeNow(), before, nil)
	})
}

// FindWorkRecords lists the job's history, newest first; f.BeforeID
// pages.
func (s *Store) FindWorkRecords(ctx context.Context, accountID, id string, f herald.WorkRecordFilter) ([]*herald.WorkRecord, error) {
	query, args := "SELECT id, record FROM work_records WHERE account_id = ? AND work_id = ?", []any{accountID, id}
	if f.BeforeID > 0 {
		query += " AND id < ?"
		args = append(args, f.BeforeID)
	}
	list, err := queryAll(ctx, s.read, query+" ORDER BY id DESC LIMIT ?", append(args, pageLimit(f.Limit)),
		func(rows *sql.Rows) (*herald.WorkRecord, error) {
			var recordID int64
			var record []byte
			if err := rows.Scan(&recordID, &record); err != nil {
				return nil, err
			}
			return decodeRecord(recordID, id, record)
		})
	if err != nil {
		return nil, fmt.Errorf("find history of work job %s: %w", id, err)
	}
	return list, nil
}

// decodeRecord reads the record column of a job's history row.
func decodeRecord(id int64, workID string, record []byte) (*herald.WorkRecord, error) {
	r := &herald.WorkRecord{}
	if err := json.Unmarshal(record, r); err != nil {
		return nil, fmt.Errorf("decode record %d: %w", id, err)
	}
	r.ID, r.WorkID = id, workID
	return r, nil
}

// LeaseWork gives owner the active jobs that it holds and free ones, up
// to max, as LeaseSubscriptions does, and returns them oldest first.
func (s *Store) LeaseWork(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Work, error) {
	list, err := leaseRows(ctx, s, "work", "state = 'active'", workColumns, scanWork, compareWork, owner, now, ttl, max)
	return list, wrapInternal(err, "lease work")
}

// compareWork orders jobs oldest first.
func compareWork(a, b *herald.Work) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.ID, b.ID))
}

// ReleaseWork gives owner's leases up, so that another node may take them
// at once.
func (s *Store) ReleaseWork(ctx context.Context, owner string) error {
	if err := s.releaseLeases(ctx, owner, "work"); err != nil {
		return fmt.Errorf("release work of %s: %w", owner, err)
	}
	return nil
}

// checkProgress validates p and returns its runtime as stored: the
// cursor never moves back from stored's.
func checkProgress(p *herald.WorkProgress) error {
	switch {
	case p.AccountID == "" || p.WorkID == "" || p.Owner == "":
		return herald.Errorf(herald.EINVALID, "save work progress: account, job and owner are required")
	case p.State != "" && !herald.ValidWorkState(p.State):
		return herald.Errorf(herald.EINVALID, "save work progress of %s: unknown state %q", p.WorkID, p.State)
	}
	return nil
}

// SaveWorkProgress stores p in one transaction: the runtime (its cursor
// never moving back), the records (which get their ids and job), a new
// state with its reason when p.State is set (which frees the lease, as
// LeaseWork returns active jobs only), and the system events. ECONFLICT,
// and nothing stored, if p.Owner does not hold the lease or the job is no
// longer active.
func (s *Store) SaveWorkProgress(ctx context.Context, p *herald.WorkProgress) error {
	if err := checkProgress(p); err != nil {
		return err
	}
	records := make([]string, len(p.Records))
	for i, r := range p.Records {
		r.WorkID = p.WorkID
		b, err := encodeJSON(r)
		if err != nil {
			return fmt.Errorf("save work progress of %s: encode record: %w", p.WorkID, err)
		}
		records[i] = b
	}
	return s.inWrite(ctx, "save work progress of "+p.WorkID, p.AccountID, func(tx *sql.Tx) ([]*herald.Event, error) {
		var (
			state  string
			cursor int64
		)
		if err := (leasedRow{"work job", "runs", p.WorkID}).scanHeld(tx.QueryRowContext(ctx,
			"SELECT lease_owner, state, runtime->>'cursor' FROM work WHERE account_id = ? AND id = ?", p.AccountID, p.WorkID),
			p.Owner, &state, &cursor); err != nil {
			return nil, err
		}
		if state != herald.WorkActive {
			return nil, herald.Errorf(herald.ECONFLICT, "lease lost: work job %q is %s, no longer active", p.WorkID, state)
		}
		for i, r := range p.Records {
			if err := tx.QueryRowContext(ctx, `INSERT INTO work_records (account_id, work_id, kind, state, started_at, record)
				VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
				p.AccountID, p.WorkID, r.Kind, r.State, micros(r.StartedAt), records[i]).Scan(&r.ID); err != nil {
				return nil, fmt.Errorf("insert record: %w", err)
			}
		}
		// Encoded once the records have their ids: the runtime's
		// LastCycle is most often one of them.
		rt := p.Runtime
		rt.Cursor = max(rt.Cursor, cursor)
		runtime, err := encodeJSON(&rt)
		if err != nil {
			return nil, fmt.Errorf("encode runtime: %w", err)
		}
		query, args := "UPDATE work SET runtime = ?, updated_at = ?", []any{runtime, micros(timeNow())}
		if p.State != "" {
			query += ", state = ?, state_reason = ?"
			args = append(args, p.State, nullIfEmpty(p.StateReason))
			if p.State != herald.WorkActive {
				query += ", lease_owner = NULL, lease_until = NULL"
			}
		}
		if _, err := tx.ExecContext(ctx, query+" WHERE account_id = ? AND id = ?", append(args, p.AccountID, p.WorkID)...); err != nil {
			return nil, err
		}
		return p.Events, nil
	})
}

// LastSeq returns the account's newest seq, 0 if it has no event.
// ENOTFOUND if there is no such account.
func (s *Store) LastSeq(ctx context.Context, accountID string) (int64, error) {
	seq, err := accountLastSeq(ctx, s.read, accountID)
	return seq, wrapInternal(err, "last seq of "+accountID)
}
