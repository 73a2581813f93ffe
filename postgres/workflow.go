package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/heraldhq/herald"
)

var (
	_ herald.WorkflowService = (*Store)(nil)
	_ herald.WorkflowQueue   = (*Store)(nil)
)

const workflowColumns = `account_id, name, definition, secret, state, cursor, created_at, updated_at`

// scanWorkflow reads a row of workflowColumns.
func scanWorkflow(row scanner) (*herald.Workflow, error) {
	var (
		accountID, name, secret, state string
		definition                     []byte
		cursor                         int64
		createdAt, updatedAt           time.Time
	)
	if err := row.Scan(&accountID, &name, &definition, &secret, &state, &cursor, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	w := &herald.Workflow{}
	if err := json.Unmarshal(definition, w); err != nil {
		return nil, fmt.Errorf("decode workflow %s: %w", name, err)
	}
	w.AccountID, w.Name, w.Secret, w.State, w.Cursor = accountID, name, secret, state, cursor
	w.CreatedAt, w.UpdatedAt = createdAt.UTC(), updatedAt.UTC()
	return w, nil
}

// rowQuerier is a pool or a transaction, for a query of one row.
type rowQuerier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

// findWorkflow reads the workflow with q, under a row lock when lock is
// set: ENOTFOUND if the account has none of that name.
func findWorkflow(ctx context.Context, q rowQuerier, accountID, name string, lock bool) (*herald.Workflow, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "workflow %q not found", name)
	if !textOK(accountID) || !textOK(name) {
		return nil, notFound // could not have been stored
	}
	sql := `SELECT ` + workflowColumns + ` FROM workflows WHERE account_id = $1 AND name = $2`
	if lock {
		sql += ` FOR NO KEY UPDATE`
	}
	w, err := scanWorkflow(q.QueryRow(ctx, sql, accountID, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("find workflow %s: %w", name, err)
	}
	return w, nil
}

// inTx runs change in a transaction, appends the system events it
// returns and commits. With lock, the transaction first takes the
// account's lock, as every writer of system events does before any other
// lock (doc.go), and hands change what it read: noAccount is returned if
// there is no such account. An error that is not internal (ENOTFOUND,
// ECONFLICT, …) is returned as it is. As in AppendEvents, the caller's
// cancellation no longer applies once the COMMIT is on its way: an error
// means that nothing was stored.
func (s *Store) inTx(ctx context.Context, what, accountID string, lock bool, noAccount error,
	change func(tx pgx.Tx, st *appendState) ([]*herald.Event, error)) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	var st *appendState
	if lock {
		if !textOK(accountID) {
			return noAccount
		}
		st, err = lockAccount(ctx, tx, accountID)
		if herald.ErrorCode(err) == herald.ENOTFOUND {
			return noAccount
		} else if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	events, err := change(tx, st)
	if err != nil {
		return wrapInternal(err, what)
	}
	if len(events) > 0 {
		if st == nil {
			return fmt.Errorf("%s: system events to append without the account's lock", what)
		}
		if err := recordChange(ctx, tx, st, accountID, events...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := tx.Commit(commitCtx); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

// wrapInternal adds what was being done to err when it is internal, and
// returns the others (ECONFLICT, …) as they are.
func wrapInternal(err error, what string) error {
	if err != nil && herald.ErrorCode(err) == herald.EINTERNAL {
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}

// one makes a list of one system event, or an error.
func one(e *herald.Event, err error) ([]*herald.Event, error) {
	if err != nil {
		return nil, err
	}
	return []*herald.Event{e}, nil
}

// CreateWorkflow stores w, and its system event, in one transaction. Its
// cursor is the account's last seq, read under the account's lock, which
// every append takes: it is triggered by exactly the events stored after
// it. A Secret left empty is made. w gets the stored times, state, cursor
// and secret. ECONFLICT if the account has a workflow of that name,
// ENOTFOUND if there is no such account.
func (s *Store) CreateWorkflow(ctx context.Context, w *herald.Workflow) error {
	switch {
	case w.Name == "":
		return herald.Errorf(herald.EINVALID, "workflow name is required")
	case w.State != "" && !herald.ValidWorkflowState(w.State):
		return herald.Errorf(herald.EINVALID, "workflow %s: unknown state %q", w.Name, w.State)
	}
	if err := checkFields("/name", w.Name, "/secret", w.Secret); err != nil {
		return err
	}
	c := *w
	noAccount := herald.Errorf(herald.ENOTFOUND, "account %q not found", w.AccountID)
	err := s.inTx(ctx, "create workflow "+w.Name, w.AccountID, true, noAccount, func(tx pgx.Tx, st *appendState) ([]*herald.Event, error) {
		at := timeNow()
		if c.Secret == "" {
			c.Secret = herald.NewSigningSecret()
		}
		c.PrepareCreate(st.LastSeq[c.AccountID], at)
		definition, err := definitionColumn(&c)
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO workflows (account_id, name, definition, secret, state, cursor, created_at, updated_at)
			VALUES ($1, $2, $3::text::json, $4, $5, $6, $7, $8)`,
			c.AccountID, c.Name, definition, c.Secret, c.State, c.Cursor, c.CreatedAt, c.UpdatedAt)
		if _, ok := isUniqueViolation(err); ok {
			return nil, herald.Errorf(herald.ECONFLICT, "workflow %q already exists", c.Name)
		} else if err != nil {
			return nil, err
		}
		return one(herald.ChangeEvent(ctx, c.AccountID, herald.SubjectWorkflow, c.Name, herald.VerbCreated, at, nil, &c))
	})
	if err != nil {
		return err
	}
	*w = c
	return nil
}

// FindWorkflow returns ENOTFOUND if the account has none of that name.
func (s *Store) FindWorkflow(ctx context.Context, accountID, name string) (*herald.Workflow, error) {
	return findWorkflow(ctx, s.pool, accountID, name, false)
}

// FindWorkflows returns the account's workflows by name.
func (s *Store) FindWorkflows(ctx context.Context, accountID string) ([]*herald.Workflow, error) {
	if !textOK(accountID) {
		return []*herald.Workflow{}, nil
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+workflowColumns+` FROM workflows WHERE account_id = $1 ORDER BY name`, accountID)
	list, err := collect(rows, scanWorkflow)
	if err != nil {
		return nil, fmt.Errorf("find workflows of %s: %w", accountID, err)
	}
	return list, nil
}

// collect reads every row with scan; none gives an empty list.
func collect[T any](rows pgx.Rows, scan func(scanner) (T, error)) ([]T, error) {
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []T{}
	}
	return list, nil
}

// changeRow runs change on the account's row that find reads by key, in a
// transaction that holds the account's lock, then the row's lock (the
// order every change takes them in, see doc.go), and records the system
// event change returns. A nil event changes nothing. notFound is returned
// if there is no such account.
func changeRow[T any](ctx context.Context, s *Store, what, accountID, key string, notFound error,
	find func(context.Context, rowQuerier, string, string, bool) (T, error),
	change func(tx pgx.Tx, before T) (*herald.Event, error)) error {
	if !textOK(key) {
		return notFound
	}
	return s.inTx(ctx, what+" "+key, accountID, true, notFound, func(tx pgx.Tx, _ *appendState) ([]*herald.Event, error) {
		before, err := find(ctx, tx, accountID, key, true)
		if err != nil {
			return nil, err
		}
		e, err := change(tx, before)
		if err != nil || e == nil {
			return nil, err
		}
		return []*herald.Event{e}, nil
	})
}

// changeWorkflow is changeRow of the account's workflow name.
func (s *Store) changeWorkflow(ctx context.Context, what, accountID, name string,
	change func(tx pgx.Tx, before *herald.Workflow) (*herald.Event, error)) error {
	return changeRow(ctx, s, what, accountID, name, herald.Errorf(herald.ENOTFOUND, "workflow %q not found", name), findWorkflow, change)
}

// UpdateWorkflow replaces the definition of w (description, filter,
// steps, max depth) and keeps the rest: state, cursor, secret, lease and
// created_at. w gets the stored workflow. ENOTFOUND if there is none.
func (s *Store) UpdateWorkflow(ctx context.Context, w *herald.Workflow) error {
	var after herald.Workflow
	err := s.changeWorkflow(ctx, "update workflow", w.AccountID, w.Name, func(tx pgx.Tx, before *herald.Workflow) (*herald.Event, error) {
		after = *w
		after.State, after.Cursor, after.Secret = before.State, before.Cursor, before.Secret
		after.CreatedAt, after.UpdatedAt = before.CreatedAt, timeNow()
		if err := replaceDefinition(ctx, tx, "workflows", "name", after.AccountID, after.Name, &after, after.UpdatedAt); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, after.AccountID, herald.SubjectWorkflow, after.Name, herald.VerbUpdated, after.UpdatedAt, before, &after)
	})
	if err != nil {
		return err
	}
	*w = after
	return nil
}

// SetWorkflowState pauses or resumes the workflow and writes its system
// event (updated). Its lease is kept: a paused workflow's cursor still
// moves. A call that changes nothing writes nothing. ENOTFOUND if there
// is none.
func (s *Store) SetWorkflowState(ctx context.Context, accountID, name, state string) error {
	if !herald.ValidWorkflowState(state) {
		return herald.Errorf(herald.EINVALID, "unknown workflow state %q", state)
	}
	return s.changeWorkflow(ctx, "set state of workflow", accountID, name, func(tx pgx.Tx, before *herald.Workflow) (*herald.Event, error) {
		if before.State == state {
			return nil, nil
		}
		after := *before
		after.State, after.UpdatedAt = state, timeNow()
		if _, err := tx.Exec(ctx, `UPDATE workflows SET state = $3, updated_at = $4 WHERE account_id = $1 AND name = $2`,
			accountID, name, state, after.UpdatedAt); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, accountID, herald.SubjectWorkflow, name, herald.VerbUpdated, after.UpdatedAt, before, &after)
	})
}

// DeleteWorkflow removes the workflow with its runs and writes its system
// event. ENOTFOUND if there is none. A node that still holds its lease,
// or one of its runs, is refused at its next save, which finds no row.
func (s *Store) DeleteWorkflow(ctx context.Context, accountID, name string) error {
	return s.changeWorkflow(ctx, "delete workflow", accountID, name, func(tx pgx.Tx, before *herald.Workflow) (*herald.Event, error) {
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM workflow_runs WHERE account_id = $1 AND workflow = $2`, accountID, name)
		b.Queue(`DELETE FROM workflows WHERE account_id = $1 AND name = $2`, accountID, name)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, accountID, herald.SubjectWorkflow, name, herald.VerbDeleted, timeNow(), before, nil)
	})
}

const runColumns = `account_id, id, workflow, event_id, seq, trigger, depth, state, step, steps, next_at, error,
	created_at, updated_at, finished_at`

// scanRun reads a row of runColumns.
func scanRun(row scanner) (*herald.WorkflowRun, error) {
	var (
		r                    herald.WorkflowRun
		depth, step          int32
		steps                []byte
		nextAt, finishedAt   pgtype.Timestamptz
		errText              pgtype.Text
		createdAt, updatedAt time.Time
	)
	if err := row.Scan(&r.AccountID, &r.ID, &r.Workflow, &r.EventID, &r.Seq, &r.Trigger, &depth, &r.State, &step,
		&steps, &nextAt, &errText, &createdAt, &updatedAt, &finishedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(steps, &r.Steps); err != nil {
		return nil, fmt.Errorf("decode steps of run %s: %w", r.ID, err)
	}
	r.Depth, r.Step = int(depth), int(step)
	r.NextAt, r.Error, r.FinishedAt = timeOrZero(nextAt), errText.String, timePtr(finishedAt)
	r.CreatedAt, r.UpdatedAt = createdAt.UTC(), updatedAt.UTC()
	return &r, nil
}

// FindWorkflowRun returns ENOTFOUND if the account has no such run.
func (s *Store) FindWorkflowRun(ctx context.Context, accountID, id string) (*herald.WorkflowRun, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "workflow run %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return nil, notFound
	}
	r, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM workflow_runs WHERE account_id = $1 AND id = $2`, accountID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("find workflow run %s: %w", id, err)
	}
	return r, nil
}

// Page sizes of FindWorkflowRuns and FindWorkRecords: a limit left 0
// gets the default; one above the maximum, the maximum.
const (
	defaultPageLimit = 100
	maxPageLimit     = 10000
)

// pageLimit returns the limit a listing uses for limit.
func pageLimit(limit int) int {
	switch {
	case limit <= 0:
		return defaultPageLimit
	case limit > maxPageLimit:
		return maxPageLimit
	}
	return limit
}

// FindWorkflowRuns lists the workflow's runs that f selects, newest
// first: by creation time, then id. f.BeforeID pages: the runs that come
// after that run in this order (none if there is no such run).
func (s *Store) FindWorkflowRuns(ctx context.Context, accountID, name string, f herald.RunFilter) ([]*herald.WorkflowRun, error) {
	if !textOK(accountID) || !textOK(name) || !textOK(f.State) || !textOK(f.EventID) || !textOK(f.BeforeID) {
		return []*herald.WorkflowRun{}, nil
	}
	q := newQuery(`SELECT `+runColumns+` FROM workflow_runs WHERE account_id = $1 AND workflow = $2`, accountID, name)
	if f.State != "" {
		q.where("state =", f.State)
	}
	if f.EventID != "" {
		q.where("event_id =", f.EventID)
	}
	if f.BeforeID != "" {
		q.and(`(created_at, id) < (SELECT created_at, id FROM workflow_runs WHERE account_id = $1 AND id = ` + q.param(f.BeforeID) + `)`)
	}
	q.orderLimit("created_at DESC, id DESC", pageLimit(f.Limit))
	rows, _ := s.pool.Query(ctx, q.sql.String(), q.args...)
	list, err := collect(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("find runs of workflow %s: %w", name, err)
	}
	return list, nil
}

// LeaseWorkflows gives owner the workflows, active or paused (a paused
// one's cursor still moves), that it holds and free ones, up to max, as
// LeaseSubscriptions does, and returns them oldest first.
func (s *Store) LeaseWorkflows(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Workflow, error) {
	list, err := lease(ctx, s, workflowLeases, scanWorkflow, func(a, b *herald.Workflow) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.Name, b.Name))
	}, owner, now, ttl, max)
	return list, wrapInternal(err, "lease workflows")
}

// ReleaseWorkflows gives owner's leases on workflows and runs up, so that
// other nodes take them at once. A run that was running is claimed again
// by the next ClaimRuns.
func (s *Store) ReleaseWorkflows(ctx context.Context, owner string) error {
	if err := s.releaseLeases(ctx, owner, "workflows", "workflow_runs"); err != nil {
		return fmt.Errorf("release workflows of %s: %w", owner, err)
	}
	return nil
}

// EnqueueRuns stores runs, skipping those whose workflow and event
// already have one, moves the workflow's cursor forward to cursor, and
// appends events, in one transaction that holds the workflow's row lock
// (after the account's, when there are events): ECONFLICT, and nothing
// stored, if owner does not hold the workflow's lease.
func (s *Store) EnqueueRuns(ctx context.Context, accountID, workflow, owner string, cursor int64, runs []*herald.WorkflowRun, events []*herald.Event) error {
	if accountID == "" || workflow == "" || owner == "" {
		return herald.Errorf(herald.EINVALID, "enqueue runs: account, workflow and owner are required")
	}
	lost := herald.Errorf(herald.ECONFLICT, "lease lost: %s no longer reads workflow %q", owner, workflow)
	if !textOK(accountID) || !textOK(workflow) || !textOK(owner) {
		return lost
	}
	now := timeNow()
	for _, r := range runs {
		if r == nil || r.ID == "" || r.EventID == "" || !textOK(r.ID) || !textOK(r.EventID) || !textOK(r.Trigger) || !textOK(r.State) {
			return herald.Errorf(herald.EINVALID, "workflow %s: a run needs an id and an event id, in valid UTF-8", workflow)
		}
		r.AccountID, r.Workflow, r.Error = accountID, workflow, cleanText(r.Error)
		r.PrepareStore(now)
	}
	return s.inTx(ctx, "enqueue runs of workflow "+workflow, accountID, len(events) > 0, lost, func(tx pgx.Tx, _ *appendState) ([]*herald.Event, error) {
		if err := scanHeld(tx.QueryRow(ctx, `SELECT lease_owner FROM workflows WHERE account_id = $1 AND name = $2 FOR NO KEY UPDATE`,
			accountID, workflow), owner, lost); err != nil {
			return nil, err
		}
		b := &pgx.Batch{}
		for _, r := range runs {
			steps, err := encodeJSON(r.Steps)
			if err != nil {
				return nil, fmt.Errorf("encode steps of run %s: %w", r.ID, err)
			}
			b.Queue(`INSERT INTO workflow_runs (account_id, id, workflow, event_id, seq, trigger, depth, state, step, steps,
					next_at, error, created_at, updated_at, finished_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::json, $11, $12, $13, $14, $15)
				ON CONFLICT (account_id, workflow, event_id) DO NOTHING`,
				accountID, r.ID, workflow, r.EventID, r.Seq, r.Trigger, r.Depth, r.State, r.Step, string(steps),
				nullIfZero(r.NextAt), nullIfEmpty(r.Error), r.CreatedAt, r.UpdatedAt, nullTime(r.FinishedAt))
		}
		b.Queue(`UPDATE workflows SET cursor = $3 WHERE account_id = $1 AND name = $2 AND cursor < $3`, accountID, workflow, cursor)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
		return events, nil
	})
}

// claimRunsSQL leases up to $4 runs of active workflows that are pending
// and due by $2, or running with a lease that ran out or was released,
// oldest first. A row another transaction has locked is skipped (another
// node claiming it, its holder saving, a deletion); locking a row that
// another node has just claimed re-reads it, and the condition then
// leaves it out.
var claimRunsSQL = `UPDATE workflow_runs u SET lease_owner = $1, lease_until = $3, state = 'running', updated_at = $2
	FROM (SELECT r.account_id, r.id FROM workflow_runs r
		WHERE r.state IN ('pending', 'running')
			AND (r.state = 'running' OR r.next_at IS NULL OR r.next_at <= $2)
			AND (r.lease_until IS NULL OR r.lease_until < $2)
			AND EXISTS (SELECT 1 FROM workflows w
				WHERE w.account_id = r.account_id AND w.name = r.workflow AND w.state = 'active')
		ORDER BY r.created_at, r.id
		LIMIT $4 FOR NO KEY UPDATE OF r SKIP LOCKED) AS f
	WHERE u.account_id = f.account_id AND u.id = f.id
	RETURNING ` + qualified("u", runColumns)

// ClaimRuns leases to owner, until now+ttl, up to max runs of active
// workflows that are pending and due by now, or running with a lease that
// ran out or was released, oldest first, marks them running and returns
// them. Several nodes may call it at once: each run goes to one of them.
// A paused workflow's runs wait for it to resume.
func (s *Store) ClaimRuns(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.WorkflowRun, error) {
	if err := checkLease(owner, ttl, max); err != nil {
		return nil, err
	}
	rows, _ := s.pool.Query(ctx, claimRunsSQL, owner, now, now.Add(ttl), max)
	list, err := collect(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("claim runs: %w", err)
	}
	slices.SortFunc(list, func(a, b *herald.WorkflowRun) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return list, nil
}

// SaveRun stores r's state, steps and times and appends events in one
// transaction that holds r's row lock (after the account's, when there
// are events), and extends r's lease to leaseUntil, or frees it when r is
// finished or pending (waiting for a retry, which any node may claim).
// ECONFLICT, and nothing stored, if owner does not hold r.
func (s *Store) SaveRun(ctx context.Context, r *herald.WorkflowRun, owner string, leaseUntil time.Time, events []*herald.Event) error {
	if r == nil || r.AccountID == "" || r.ID == "" || owner == "" {
		return herald.Errorf(herald.EINVALID, "save run: account, run id and owner are required")
	}
	lost := herald.Errorf(herald.ECONFLICT, "lease lost: %s no longer holds run %q", owner, r.ID)
	if !textOK(r.AccountID) || !textOK(r.ID) || !textOK(owner) {
		return lost
	}
	if !textOK(r.State) {
		return herald.Errorf(herald.EINVALID, "save run %s: state must be valid UTF-8", r.ID)
	}
	r.PrepareStore(timeNow())
	r.Error = cleanText(r.Error)
	steps, err := encodeJSON(r.Steps)
	if err != nil {
		return fmt.Errorf("save run %s: encode steps: %w", r.ID, err)
	}
	until, leaseOwner := pgtype.Timestamptz{Time: leaseUntil, Valid: true}, pgtype.Text{String: owner, Valid: true}
	if r.Finished() || r.State == herald.RunPending {
		until, leaseOwner = pgtype.Timestamptz{}, pgtype.Text{}
	}
	return s.inTx(ctx, "save run "+r.ID, r.AccountID, len(events) > 0, lost, func(tx pgx.Tx, _ *appendState) ([]*herald.Event, error) {
		if err := scanHeld(tx.QueryRow(ctx, `SELECT lease_owner FROM workflow_runs WHERE account_id = $1 AND id = $2 FOR NO KEY UPDATE`,
			r.AccountID, r.ID), owner, lost); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE workflow_runs SET state = $3, step = $4, steps = $5::text::json, next_at = $6,
				error = $7, finished_at = $8, updated_at = $9, lease_owner = $10, lease_until = $11
			WHERE account_id = $1 AND id = $2`,
			r.AccountID, r.ID, r.State, r.Step, string(steps), nullIfZero(r.NextAt), nullIfEmpty(r.Error),
			nullTime(r.FinishedAt), r.UpdatedAt, leaseOwner, until); err != nil {
			return nil, err
		}
		return events, nil
	})
}
