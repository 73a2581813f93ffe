package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/heraldhq/herald"
)

var (
	_ herald.WorkService = (*Store)(nil)
	_ herald.WorkQueue   = (*Store)(nil)
)

const workColumns = `account_id, id, kind, definition, secret, state, state_reason, runtime, run_now_at, created_at, updated_at`

// scanWork reads a row of workColumns.
func scanWork(row scanner) (*herald.Work, error) {
	var (
		w                                  herald.Work
		accountID, id, kind, secret, state string
		definition, runtime                []byte
		reason                             pgtype.Text
		runNowAt                           pgtype.Timestamptz
		createdAt, updatedAt               time.Time
	)
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
	w.RunNowAt, w.CreatedAt, w.UpdatedAt = timePtr(runNowAt), createdAt.UTC(), updatedAt.UTC()
	return &w, nil
}

// findWork reads the job with q, under a row lock when lock is set:
// ENOTFOUND if the account has none of that id.
func findWork(ctx context.Context, q rowQuerier, accountID, id string, lock bool) (*herald.Work, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "work job %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return nil, notFound
	}
	sql := `SELECT ` + workColumns + ` FROM work WHERE account_id = $1 AND id = $2`
	if lock {
		sql += ` FOR NO KEY UPDATE`
	}
	w, err := scanWork(q.QueryRow(ctx, sql, accountID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("find work job %s: %w", id, err)
	}
	return w, nil
}

// CreateWork stores w, and its system event, in one transaction, with
// the runtime that w.PrepareCreate gives it from the account's last seq,
// read under the account's lock. A Secret left empty is made. w gets the
// stored state, runtime, times and secret. ECONFLICT if the account has a
// job of that id, ENOTFOUND if there is no such account.
func (s *Store) CreateWork(ctx context.Context, w *herald.Work) error {
	switch {
	case w.ID == "":
		return herald.Errorf(herald.EINVALID, "work job id is required")
	case w.State != "" && !herald.ValidWorkState(w.State):
		return herald.Errorf(herald.EINVALID, "work job %s: unknown state %q", w.ID, w.State)
	}
	if err := checkFields("/id", w.ID, "/kind", w.Kind, "/secret", w.Secret); err != nil {
		return err
	}
	c := *w
	c.StateReason = cleanText(c.StateReason)
	noAccount := herald.Errorf(herald.ENOTFOUND, "account %q not found", w.AccountID)
	err := s.inTx(ctx, "create work job "+w.ID, w.AccountID, true, noAccount, func(tx pgx.Tx, st *appendState) ([]*herald.Event, error) {
		at := timeNow()
		if c.State == "" {
			c.State = herald.WorkActive
		}
		if c.Secret == "" {
			c.Secret = herald.NewSigningSecret()
		}
		c.PrepareCreate(st.LastSeq[c.AccountID], at)
		if c.RunNowAt != nil {
			t := c.RunNowAt.UTC().Truncate(time.Microsecond)
			c.RunNowAt = &t
		}
		definition, runtime, err := encodeWork(&c)
		if err != nil {
			return nil, err
		}
		_, err = tx.Exec(ctx, `INSERT INTO work (account_id, id, kind, definition, secret, state, state_reason, runtime,
				run_now_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4::text::json, $5, $6, $7, $8::text::json, $9, $10, $11)`,
			c.AccountID, c.ID, c.Kind, definition, c.Secret, c.State, nullIfEmpty(c.StateReason), runtime,
			nullTime(c.RunNowAt), c.CreatedAt, c.UpdatedAt)
		if _, ok := isUniqueViolation(err); ok {
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

// encodeWork returns the definition and runtime columns of w.
func encodeWork(w *herald.Work) (definition, runtime string, err error) {
	if definition, err = definitionColumn(w); err != nil {
		return "", "", fmt.Errorf("encode: %w", err)
	}
	r, err := encodeJSON(&w.Runtime)
	if err != nil {
		return "", "", fmt.Errorf("encode runtime: %w", err)
	}
	return definition, string(r), nil
}

// FindWork returns ENOTFOUND if the account has no such job.
func (s *Store) FindWork(ctx context.Context, accountID, id string) (*herald.Work, error) {
	return findWork(ctx, s.pool, accountID, id, false)
}

// FindWorks returns the account's jobs of kind ("" for all), oldest
// first.
func (s *Store) FindWorks(ctx context.Context, accountID, kind string) ([]*herald.Work, error) {
	if !textOK(accountID) || !textOK(kind) {
		return []*herald.Work{}, nil
	}
	q := newQuery(`SELECT `+workColumns+` FROM work WHERE account_id = $1`, accountID)
	if kind != "" {
		q.where("kind =", kind)
	}
	q.sql.WriteString(` ORDER BY created_at, id`)
	rows, _ := s.pool.Query(ctx, q.sql.String(), q.args...)
	list, err := collect(rows, scanWork)
	if err != nil {
		return nil, fmt.Errorf("find work jobs of %s: %w", accountID, err)
	}
	return list, nil
}

// changeWork is changeRow of the account's job id.
func (s *Store) changeWork(ctx context.Context, what, accountID, id string,
	change func(tx pgx.Tx, before *herald.Work) (*herald.Event, error)) error {
	return changeRow(ctx, s, what, accountID, id, herald.Errorf(herald.ENOTFOUND, "work job %q not found", id), findWork, change)
}

// UpdateWork replaces the definition of w (name, filter, export, alert)
// and keeps the rest: kind, state, runtime, secret, lease and times. w
// gets the stored job. ENOTFOUND if there is none.
func (s *Store) UpdateWork(ctx context.Context, w *herald.Work) error {
	var after herald.Work
	err := s.changeWork(ctx, "update work job", w.AccountID, w.ID, func(tx pgx.Tx, before *herald.Work) (*herald.Event, error) {
		after = *w
		after.Kind, after.Secret, after.State, after.StateReason = before.Kind, before.Secret, before.State, before.StateReason
		after.Runtime, after.RunNowAt, after.CreatedAt, after.UpdatedAt = before.Runtime, before.RunNowAt, before.CreatedAt, timeNow()
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

// SetWorkState moves the job to state, with reason, as Work.ChangeState
// says, and writes its system event (updated). Any state but active
// frees its lease, so that its holder's next save is refused. A call that
// changes nothing writes nothing. ENOTFOUND if there is none, EINVALID
// for an unknown state.
func (s *Store) SetWorkState(ctx context.Context, accountID, id, state, reason string) error {
	if !herald.ValidWorkState(state) {
		return herald.Errorf(herald.EINVALID, "unknown work job state %q", state)
	}
	reason = cleanText(reason)
	return s.changeWork(ctx, "set state of work job", accountID, id, func(tx pgx.Tx, before *herald.Work) (*herald.Event, error) {
		after := *before
		if !after.ChangeState(state, reason, timeNow()) {
			return nil, nil
		}
		runtime, err := encodeJSON(&after.Runtime)
		if err != nil {
			return nil, fmt.Errorf("encode runtime: %w", err)
		}
		sql := `UPDATE work SET state = $3, state_reason = $4, runtime = $5::text::json, updated_at = $6`
		if state != herald.WorkActive {
			sql += `, lease_owner = NULL, lease_until = NULL`
		}
		if _, err := tx.Exec(ctx, sql+` WHERE account_id = $1 AND id = $2`,
			accountID, id, state, nullIfEmpty(after.StateReason), string(runtime), after.UpdatedAt); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, accountID, herald.SubjectWork, id, herald.VerbUpdated, after.UpdatedAt, before, &after)
	})
}

// RunWorkNow sets the job's RunNowAt to at, quietly: it writes no system
// event (the cycle it asks for writes its own). ENOTFOUND if there is
// none.
func (s *Store) RunWorkNow(ctx context.Context, accountID, id string, at time.Time) error {
	notFound := herald.Errorf(herald.ENOTFOUND, "work job %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return notFound
	}
	tag, err := s.pool.Exec(ctx, `UPDATE work SET run_now_at = $3 WHERE account_id = $1 AND id = $2`,
		accountID, id, at.UTC().Truncate(time.Microsecond))
	if err != nil {
		return fmt.Errorf("run work job %s now: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound
	}
	return nil
}

// DeleteWork removes the job with its history and writes its system
// event. ENOTFOUND if there is none. A node that still holds its lease is
// refused at its next save, which finds no row.
func (s *Store) DeleteWork(ctx context.Context, accountID, id string) error {
	return s.changeWork(ctx, "delete work job", accountID, id, func(tx pgx.Tx, before *herald.Work) (*herald.Event, error) {
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM work_records WHERE account_id = $1 AND work_id = $2`, accountID, id)
		b.Queue(`DELETE FROM work WHERE account_id = $1 AND id = $2`, accountID, id)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, accountID, herald.SubjectWork, id, herald.VerbDeleted, timeNow(), before, nil)
	})
}

// FindWorkRecords lists the job's history, newest first; f.BeforeID
// pages.
func (s *Store) FindWorkRecords(ctx context.Context, accountID, id string, f herald.WorkRecordFilter) ([]*herald.WorkRecord, error) {
	if !textOK(accountID) || !textOK(id) {
		return []*herald.WorkRecord{}, nil
	}
	q := newQuery(`SELECT id, record FROM work_records WHERE account_id = $1 AND work_id = $2`, accountID, id)
	if f.BeforeID > 0 {
		q.where("id <", f.BeforeID)
	}
	q.orderLimit("id DESC", pageLimit(f.Limit))
	rows, _ := s.pool.Query(ctx, q.sql.String(), q.args...)
	list, err := collect(rows, func(row scanner) (*herald.WorkRecord, error) {
		var recordID int64
		var record []byte
		if err := row.Scan(&recordID, &record); err != nil {
			return nil, err
		}
		r := &herald.WorkRecord{}
		if err := json.Unmarshal(record, r); err != nil {
			return nil, fmt.Errorf("decode record %d: %w", recordID, err)
		}
		r.ID, r.WorkID = recordID, id
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("find history of work job %s: %w", id, err)
	}
	return list, nil
}

// LeaseWork gives owner the active jobs that it holds and free ones, up
// to max, as LeaseSubscriptions does, and returns them oldest first.
func (s *Store) LeaseWork(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Work, error) {
	list, err := lease(ctx, s, workLeases, scanWork, func(a, b *herald.Work) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.ID, b.ID))
	}, owner, now, ttl, max)
	return list, wrapInternal(err, "lease work")
}

// ReleaseWork gives owner's leases up, so that other nodes take them at
// once.
func (s *Store) ReleaseWork(ctx context.Context, owner string) error {
	if err := s.releaseLeases(ctx, owner, "work"); err != nil {
		return fmt.Errorf("release work of %s: %w", owner, err)
	}
	return nil
}

// SaveWorkProgress stores p in one transaction that holds the job's row
// lock (after the account's, when there are events): the runtime (its
// cursor never moving back), the records (which get their ids and job), a
// new state with its reason when p.State is set (any but active frees the
// lease, as LeaseWork returns active jobs only), and the system events.
// ECONFLICT, and nothing stored, if p.Owner does not hold the lease or
// the job is no longer active.
func (s *Store) SaveWorkProgress(ctx context.Context, p *herald.WorkProgress) error {
	switch {
	case p.AccountID == "" || p.WorkID == "" || p.Owner == "":
		return herald.Errorf(herald.EINVALID, "save work progress: account, job and owner are required")
	case p.State != "" && !herald.ValidWorkState(p.State):
		return herald.Errorf(herald.EINVALID, "save work progress of %s: unknown state %q", p.WorkID, p.State)
	}
	lost := herald.Errorf(herald.ECONFLICT, "lease lost: %s no longer runs work job %q", p.Owner, p.WorkID)
	if !textOK(p.AccountID) || !textOK(p.WorkID) || !textOK(p.Owner) {
		return lost
	}
	records := make([]string, len(p.Records))
	for i, r := range p.Records {
		if !textOK(r.Kind) || !textOK(r.State) {
			return herald.Errorf(herald.EINVALID, "save work progress of %s: a record's kind and state must be valid UTF-8", p.WorkID)
		}
		r.WorkID, r.Error = p.WorkID, cleanText(r.Error)
		b, err := encodeJSON(r)
		if err != nil {
			return fmt.Errorf("save work progress of %s: encode record: %w", p.WorkID, err)
		}
		records[i] = string(b)
	}
	reason := cleanText(p.StateReason)
	return s.inTx(ctx, "save work progress of "+p.WorkID, p.AccountID, len(p.Events) > 0, lost, func(tx pgx.Tx, _ *appendState) ([]*herald.Event, error) {
		var (
			state  string
			cursor int64
		)
		if err := scanHeld(tx.QueryRow(ctx, `SELECT lease_owner, state, (runtime->>'cursor')::bigint FROM work
			WHERE account_id = $1 AND id = $2 FOR NO KEY UPDATE`, p.AccountID, p.WorkID), p.Owner, lost, &state, &cursor); err != nil {
			return nil, err
		}
		if state != herald.WorkActive {
			return nil, herald.Errorf(herald.ECONFLICT, "lease lost: work job %q is %s, no longer active", p.WorkID, state)
		}
		for i, r := range p.Records {
			if err := tx.QueryRow(ctx, `INSERT INTO work_records (account_id, work_id, kind, state, started_at, record)
				VALUES ($1, $2, $3, $4, $5, $6::text::json) RETURNING id`,
				p.AccountID, p.WorkID, r.Kind, r.State, r.StartedAt, records[i]).Scan(&r.ID); err != nil {
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
		q := newQuery(`UPDATE work SET runtime = $3::text::json, updated_at = $4`, p.AccountID, p.WorkID, string(runtime), timeNow())
		if p.State != "" {
			q.sql.WriteString(`, state = ` + q.param(p.State) + `, state_reason = ` + q.param(nullIfEmpty(reason)))
			if p.State != herald.WorkActive {
				q.sql.WriteString(`, lease_owner = NULL, lease_until = NULL`)
			}
		}
		q.sql.WriteString(` WHERE account_id = $1 AND id = $2`)
		if _, err := tx.Exec(ctx, q.sql.String(), q.args...); err != nil {
			return nil, err
		}
		return p.Events, nil
	})
}

// LastSeq returns the account's newest seq, 0 if it has no event.
// ENOTFOUND if there is no such account.
func (s *Store) LastSeq(ctx context.Context, accountID string) (int64, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "account %q not found", accountID)
	if !textOK(accountID) {
		return 0, notFound
	}
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT last_seq FROM accounts WHERE id = $1`, accountID).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound
	} else if err != nil {
		return 0, fmt.Errorf("last seq of %s: %w", accountID, err)
	}
	return seq, nil
}
