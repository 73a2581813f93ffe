package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

var (
	_ herald.WorkflowService = (*Store)(nil)
	_ herald.WorkflowQueue   = (*Store)(nil)
)

const workflowColumns = "account_id, name, definition, secret, state, cursor, created_at, updated_at"

// rowScanner is a row of a query, or the one row of QueryRow.
type rowScanner interface{ Scan(...any) error }

// rowQuerier is a pool or a transaction, for a query of one row.
type rowQuerier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// scanWorkflow reads a row of workflowColumns.
func scanWorkflow(row rowScanner) (*herald.Workflow, error) {
	var (
		accountID, name, secret, state string
		definition                     []byte
		cursor, createdAt, updatedAt   int64
	)
	if err := row.Scan(&accountID, &name, &definition, &secret, &state, &cursor, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	w := &herald.Workflow{}
	if err := json.Unmarshal(definition, w); err != nil {
		return nil, fmt.Errorf("decode workflow %s: %w", name, err)
	}
	w.AccountID, w.Name, w.Secret, w.State, w.Cursor = accountID, name, secret, state, cursor
	w.CreatedAt, w.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	return w, nil
}

// findWorkflow reads the workflow with q: ENOTFOUND if the account has
// none of that name.
func findWorkflow(ctx context.Context, q rowQuerier, accountID, name string) (*herald.Workflow, error) {
	w, err := scanWorkflow(q.QueryRowContext(ctx, "SELECT "+workflowColumns+
		" FROM workflows WHERE account_id = ? AND name = ?", accountID, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "workflow %q not found", name)
	case err != nil:
		return nil, fmt.Errorf("find workflow %s: %w", name, err)
	}
	return w, nil
}

// accountLastSeq reads, in tx, the account's newest seq: ENOTFOUND if
// there is no such account. Under the write lock, no event is stored
// between that read and the commit.
func accountLastSeq(ctx context.Context, q rowQuerier, accountID string) (int64, error) {
	var lastSeq int64
	err := q.QueryRowContext(ctx, "SELECT last_seq FROM accounts WHERE id = ?", accountID).Scan(&lastSeq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, herald.Errorf(herald.ENOTFOUND, "account %q not found", accountID)
	case err != nil:
		return 0, err
	}
	return lastSeq, nil
}

// inWrite runs change in a write transaction, appends the system events
// it returns in the same transaction, and commits. An error that is not
// internal (ENOTFOUND, ECONFLICT, …) is returned as it is.
func (s *Store) inWrite(ctx context.Context, what, accountID string, change func(tx *sql.Tx) ([]*herald.Event, error)) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	events, err := change(tx)
	if err != nil {
		return wrapInternal(err, what)
	}
	if len(events) > 0 {
		if err := s.recordChange(ctx, tx, accountID, events...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
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

// changeRow runs change, in a write transaction, on the account's row
// that find reads by key, and records the system event change returns. A
// nil event changes nothing.
func changeRow[T any](ctx context.Context, s *Store, what, accountID, key string,
	find func(context.Context, rowQuerier, string, string) (T, error), change func(tx *sql.Tx, before T) (*herald.Event, error)) error {
	return s.inWrite(ctx, what+" "+key, accountID, func(tx *sql.Tx) ([]*herald.Event, error) {
		before, err := find(ctx, tx, accountID, key)
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

// one makes a list of one system event, or an error.
func one(e *herald.Event, err error) ([]*herald.Event, error) {
	if err != nil {
		return nil, err
	}
	return []*herald.Event{e}, nil
}

// CreateWorkflow stores w, and its system event, in one transaction. Its
// cursor is the account's last seq, read under the write lock: it is
// triggered by exactly the events stored after it. A Secret left empty
// is made. w gets the stored times, state, cursor and secret. ECONFLICT
// if the account has a workflow of that name, ENOTFOUND if there is no
// such account.
func (s *Store) CreateWorkflow(ctx context.Context, w *herald.Workflow) error {
	switch {
	case w.Name == "":
		return herald.Errorf(herald.EINVALID, "workflow name is required")
	case w.State != "" && !herald.ValidWorkflowState(w.State):
		return herald.Errorf(herald.EINVALID, "workflow %s: unknown state %q", w.Name, w.State)
	}
	c := *w
	err := s.inWrite(ctx, "create workflow "+w.Name, w.AccountID, func(tx *sql.Tx) ([]*herald.Event, error) {
		lastSeq, err := accountLastSeq(ctx, tx, c.AccountID)
		if err != nil {
			return nil, err
		}
		at := timeNow()
		if c.Secret == "" {
			c.Secret = herald.NewSigningSecret()
		}
		c.PrepareCreate(lastSeq, at)
		definition, err := definitionColumn(&c)
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO workflows (account_id, name, definition, secret, state, cursor, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			c.AccountID, c.Name, definition, c.Secret, c.State, c.Cursor, micros(c.CreatedAt), micros(c.UpdatedAt))
		if isUniqueViolation(err) {
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
	return findWorkflow(ctx, s.read, accountID, name)
}

// FindWorkflows returns the account's workflows by name.
func (s *Store) FindWorkflows(ctx context.Context, accountID string) ([]*herald.Workflow, error) {
	list, err := queryAll(ctx, s.read, "SELECT "+workflowColumns+" FROM workflows WHERE account_id = ? ORDER BY name",
		[]any{accountID}, func(rows *sql.Rows) (*herald.Workflow, error) { return scanWorkflow(rows) })
	if err != nil {
		return nil, fmt.Errorf("find workflows of %s: %w", accountID, err)
	}
	return list, nil
}

// UpdateWorkflow replaces the definition of w (description, filter,
// steps, max depth) and keeps the rest: state, cursor, secret, lease and
// created_at. w gets the stored workflow. ENOTFOUND if there is none.
func (s *Store) UpdateWorkflow(ctx context.Context, w *herald.Workflow) error {
	var after herald.Workflow
	err := changeRow(ctx, s, "update workflow", w.AccountID, w.Name, findWorkflow, func(tx *sql.Tx, before *herald.Workflow) (*herald.Event, error) {
		after = *w
		keepWorkflowState(&after, before, timeNow())
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

// keepWorkflowState gives w, a workflow as a client sent it, what an
// update keeps of before.
func keepWorkflowState(w, before *herald.Workflow, now time.Time) {
	w.State, w.Cursor, w.Secret = before.State, before.Cursor, before.Secret
	w.CreatedAt, w.UpdatedAt = before.CreatedAt, now
}

// SetWorkflowState pauses or resumes the workflow and writes its system
// event (updated). Its lease is kept: a paused workflow's cursor still
// moves. A call that changes nothing writes nothing. ENOTFOUND if there
// is none.
func (s *Store) SetWorkflowState(ctx context.Context, accountID, name, state string) error {
	if !herald.ValidWorkflowState(state) {
		return herald.Errorf(herald.EINVALID, "unknown workflow state %q", state)
	}
	return changeRow(ctx, s, "set state of workflow", accountID, name, findWorkflow, func(tx *sql.Tx, before *herald.Workflow) (*herald.Event, error) {
		if before.State == state {
			return nil, nil
		}
		after := *before
		after.State, after.UpdatedAt = state, timeNow()
		if _, err := tx.ExecContext(ctx, "UPDATE workflows SET state = ?, updated_at = ? WHERE account_id = ? AND name = ?",
			state, micros(after.UpdatedAt), accountID, name); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, accountID, herald.SubjectWorkflow, name, herald.VerbUpdated, after.UpdatedAt, before, &after)
	})
}

// DeleteWorkflow removes the workflow with its runs and writes its system
// event. ENOTFOUND if there is none.
func (s *Store) DeleteWorkflow(ctx context.Context, accountID, name string) error {
	return changeRow(ctx, s, "delete workflow", accountID, name, findWorkflow, func(tx *sql.Tx, before *herald.Workflow) (*herald.Event, error) {
		if _, err := tx.ExecContext(ctx, "DELETE FROM workflow_runs WHERE account_id = ? AND workflow = ?", accountID, name); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM workflows WHERE account_id = ? AND name = ?", accountID, name); err != nil {
			return nil, err
		}
		return herald.ChangeEvent(ctx, accountID, herald.SubjectWorkflow, name, herald.VerbDeleted, timeNow(), before, nil)
	})
}

const runColumns = "account_id, id, workflow, event_id, seq, trigger, depth, state, step, steps, next_at, error, created_at, updated_at, finished_at"

// scanRun reads a row of runColumns.
func scanRun(row rowScanner) (*herald.WorkflowRun, error) {
	var (
		r                    herald.WorkflowRun
		steps                []byte
		nextAt, finishedAt   sql.NullInt64
		errText              sql.NullString
		createdAt, updatedAt int64
	)
	if err := row.Scan(&r.AccountID, &r.ID, &r.Workflow, &r.EventID, &r.Seq, &r.Trigger, &r.Depth, &r.State, &r.Step,
		&steps, &nextAt, &errText, &createdAt, &updatedAt, &finishedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(steps, &r.Steps); err != nil {
		return nil, fmt.Errorf("decode steps of run %s: %w", r.ID, err)
	}
	r.NextAt, r.Error, r.FinishedAt = timeOrZero(nextAt), errText.String, timePtr(finishedAt)
	r.CreatedAt, r.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	return &r, nil
}

// FindWorkflowRun returns ENOTFOUND if the account has no such run.
func (s *Store) FindWorkflowRun(ctx context.Context, accountID, id string) (*herald.WorkflowRun, error) {
	r, err := scanRun(s.read.QueryRowContext(ctx, "SELECT "+runColumns+" FROM workflow_runs WHERE account_id = ? AND id = ?", accountID, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, herald.Errorf(herald.ENOTFOUND, "workflow run %q not found", id)
	case err != nil:
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
	var q strings.Builder
	q.WriteString("SELECT " + runColumns + " FROM workflow_runs WHERE account_id = ? AND workflow = ?")
	args := []any{accountID, name}
	for _, c := range []struct{ column, value string }{{"state", f.State}, {"event_id", f.EventID}} {
		if c.value != "" {
			q.WriteString(" AND " + c.column + " = ?")
			args = append(args, c.value)
		}
	}
	if f.BeforeID != "" {
		q.WriteString(" AND (created_at, id) < (SELECT created_at, id FROM workflow_runs WHERE account_id = ? AND id = ?)")
		args = append(args, accountID, f.BeforeID)
	}
	q.WriteString(" ORDER BY created_at DESC, id DESC LIMIT ?")
	args = append(args, pageLimit(f.Limit))
	list, err := queryAll(ctx, s.read, q.String(), args, func(rows *sql.Rows) (*herald.WorkflowRun, error) { return scanRun(rows) })
	if err != nil {
		return nil, fmt.Errorf("find runs of workflow %s: %w", name, err)
	}
	return list, nil
}

// LeaseWorkflows gives owner the workflows, active or paused (a paused
// one's cursor still moves), that it holds and free ones, up to max, as
// LeaseSubscriptions does, and returns them oldest first.
func (s *Store) LeaseWorkflows(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.Workflow, error) {
	list, err := leaseRows(ctx, s, "workflows", "true", workflowColumns, scanWorkflow,
		func(a, b *herald.Workflow) int {
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.Name, b.Name))
		}, owner, now, ttl, max)
	return list, wrapInternal(err, "lease workflows")
}

// ReleaseWorkflows gives owner's leases on workflows and runs up, so that
// another node may take them at once. A run that was running is claimed
// again by the next ClaimRuns.
func (s *Store) ReleaseWorkflows(ctx context.Context, owner string) error {
	if err := s.releaseLeases(ctx, owner, "workflows", "workflow_runs"); err != nil {
		return fmt.Errorf("release workflows of %s: %w", owner, err)
	}
	return nil
}

// checkRun refuses a run the engine made without an id or an event.
func checkRun(r *herald.WorkflowRun, workflow string) error {
	if r == nil || r.ID == "" || r.EventID == "" {
		return herald.Errorf(herald.EINVALID, "workflow %s: a run needs an id and an event id", workflow)
	}
	return nil
}

// EnqueueRuns stores runs, skipping those whose workflow and event
// already have one, moves the workflow's cursor forward to cursor, and
// appends events, in one transaction: ECONFLICT, and nothing stored, if
// owner does not hold the workflow's lease.
func (s *Store) EnqueueRuns(ctx context.Context, accountID, workflow, owner string, cursor int64, runs []*herald.WorkflowRun, events []*herald.Event) error {
	if accountID == "" || workflow == "" || owner == "" {
		return herald.Errorf(herald.EINVALID, "enqueue runs: account, workflow and owner are required")
	}
	now := timeNow()
	for _, r := range runs {
		if err := checkRun(r, workflow); err != nil {
			return err
		}
		r.AccountID, r.Workflow = accountID, workflow
		r.PrepareStore(now)
	}
	return s.inWrite(ctx, "enqueue runs of workflow "+workflow, accountID, func(tx *sql.Tx) ([]*herald.Event, error) {
		if err := (leasedRow{"workflow", "reads", workflow}).scanHeld(tx.QueryRowContext(ctx,
			"SELECT lease_owner FROM workflows WHERE account_id = ? AND name = ?", accountID, workflow), owner); err != nil {
			return nil, err
		}
		for _, r := range runs {
			steps, err := encodeJSON(r.Steps)
			if err != nil {
				return nil, fmt.Errorf("encode steps of run %s: %w", r.ID, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO workflow_runs (account_id, id, workflow, event_id, seq, trigger, depth,
					state, step, steps, next_at, error, created_at, updated_at, finished_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (account_id, workflow, event_id) DO NOTHING`,
				accountID, r.ID, workflow, r.EventID, r.Seq, r.Trigger, r.Depth, r.State, r.Step, steps,
				nullIfZero(r.NextAt), nullIfEmpty(r.Error), micros(r.CreatedAt), micros(r.UpdatedAt), nullTime(r.FinishedAt)); err != nil {
				return nil, fmt.Errorf("insert run %s: %w", r.ID, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE workflows SET cursor = ? WHERE account_id = ? AND name = ? AND cursor < ?",
			cursor, accountID, workflow, cursor); err != nil {
			return nil, err
		}
		return events, nil
	})
}

// ClaimRuns leases to owner, until now+ttl, up to max runs of active
// workflows that are pending and due by now, or running with a lease
// that ran out or was released, oldest first, marks them running and
// returns them. A paused workflow's runs wait for it to resume. The query
// starts from the index of unfinished runs: finished ones pile up, and a
// plan that walked a workflow's runs to find the few due cost most of a
// busy server's CPU.
func (s *Store) ClaimRuns(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*herald.WorkflowRun, error) {
	if err := checkLease(owner, ttl, max); err != nil {
		return nil, err
	}
	var list []*herald.WorkflowRun
	err := s.inWrite(ctx, "claim runs", "", func(tx *sql.Tx) ([]*herald.Event, error) {
		var err error
		list, err = queryAll(ctx, tx, `UPDATE workflow_runs SET lease_owner = ?1, lease_until = ?2, state = 'running', updated_at = ?3
			WHERE rowid IN (SELECT r.rowid FROM workflow_runs r
				WHERE r.state IN ('pending', 'running')
					AND (r.state = 'running' OR r.next_at IS NULL OR r.next_at <= ?3)
					AND (r.lease_until IS NULL OR r.lease_until < ?3)
					AND EXISTS (SELECT 1 FROM workflows w
						WHERE w.account_id = r.account_id AND w.name = r.workflow AND w.state = 'active')
				ORDER BY r.created_at, r.id LIMIT ?4)
			RETURNING `+runColumns,
			[]any{owner, micros(now.Add(ttl)), micros(now), max}, func(rows *sql.Rows) (*herald.WorkflowRun, error) { return scanRun(rows) })
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, compareRuns)
	return list, nil
}

// compareRuns orders runs oldest first.
func compareRuns(a, b *herald.WorkflowRun) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
}

// SaveRun stores r's state, steps and times and appends events in one
// transaction, and extends r's lease to leaseUntil, or frees it when r
// is finished or pending (waiting for a retry, which any node may
// claim). ECONFLICT, and nothing stored, if owner does not hold r.
func (s *Store) SaveRun(ctx context.Context, r *herald.WorkflowRun, owner string, leaseUntil time.Time, events []*herald.Event) error {
	if r == nil || r.AccountID == "" || r.ID == "" || owner == "" {
		return herald.Errorf(herald.EINVALID, "save run: account, run id and owner are required")
	}
	r.PrepareStore(timeNow())
	steps, err := encodeJSON(r.Steps)
	if err != nil {
		return fmt.Errorf("save run %s: encode steps: %w", r.ID, err)
	}
	var until any = micros(leaseUntil)
	leaseOwner := any(owner)
	if r.Finished() || r.State == herald.RunPending {
		until, leaseOwner = nil, nil
	}
	return s.inWrite(ctx, "save run "+r.ID, r.AccountID, func(tx *sql.Tx) ([]*herald.Event, error) {
		if err := (leasedRow{"run", "holds", r.ID}).scanHeld(tx.QueryRowContext(ctx,
			"SELECT lease_owner FROM workflow_runs WHERE account_id = ? AND id = ?", r.AccountID, r.ID), owner); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE workflow_runs SET state = ?, step = ?, steps = ?, next_at = ?, error = ?,
				finished_at = ?, updated_at = ?, lease_owner = ?, lease_until = ?
			WHERE account_id = ? AND id = ?`,
			r.State, r.Step, steps, nullIfZero(r.NextAt), nullIfEmpty(r.Error), nullTime(r.FinishedAt), micros(r.UpdatedAt),
			leaseOwner, until, r.AccountID, r.ID); err != nil {
			return nil, err
		}
		return events, nil
	})
}
