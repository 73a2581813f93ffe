package httpapi

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/mock"
)

// workflowStore is the part of memStore that keeps workflows and their
// runs, as the stores' contract describes them.
type workflowStore struct {
	byRef map[herald.Ref]*herald.Workflow // by account and name
	// runs are kept by workflow, in creation order.
	runs map[herald.Ref][]*herald.WorkflowRun
}

// workStore is the part of memStore that keeps work jobs and their
// history.
type workStore struct {
	byRef    map[herald.Ref]*herald.Work
	order    []herald.Ref // creation order
	records  map[herald.Ref][]*herald.WorkRecord
	recordID int64
}

func newWorkflowStore() workflowStore {
	return workflowStore{byRef: map[herald.Ref]*herald.Workflow{}, runs: map[herald.Ref][]*herald.WorkflowRun{}}
}

func newWorkStore() workStore {
	return workStore{byRef: map[herald.Ref]*herald.Work{}, records: map[herald.Ref][]*herald.WorkRecord{}}
}

// cloneJSON returns a deep copy of v by a JSON round trip; the members
// JSON does not carry (account, secret) are the caller's to copy.
func cloneJSON[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the domain types always encode
	}
	var c T
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

func cloneWorkflow(w *herald.Workflow) *herald.Workflow {
	c := cloneJSON(w)
	c.AccountID, c.Secret = w.AccountID, w.Secret
	return c
}

func cloneWork(w *herald.Work) *herald.Work {
	c := cloneJSON(w)
	c.AccountID, c.Secret = w.AccountID, w.Secret
	return c
}

func (m *memStore) workflowService() *mock.WorkflowService {
	notFound := func(name string) error { return herald.Errorf(herald.ENOTFOUND, "no workflow %s", name) }
	return &mock.WorkflowService{
		CreateWorkflowFn: func(ctx context.Context, w *herald.Workflow) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("CreateWorkflow"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: w.AccountID, ID: w.Name}
			if _, ok := m.flows.byRef[ref]; ok {
				return herald.Errorf(herald.ECONFLICT, "workflow %s exists", w.Name)
			}
			c := cloneWorkflow(w)
			if c.Secret == "" {
				c.Secret = herald.NewSigningSecret()
			}
			c.PrepareCreate(m.seq[w.AccountID], m.now())
			if err := m.change(ctx, w.AccountID, herald.SubjectWorkflow, w.Name, herald.VerbCreated, nil, c); err != nil {
				return err
			}
			m.flows.byRef[ref] = c
			return nil
		},
		FindWorkflowFn: func(ctx context.Context, accountID, name string) (*herald.Workflow, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindWorkflow"); err != nil {
				return nil, err
			}
			if w, ok := m.flows.byRef[herald.Ref{AccountID: accountID, ID: name}]; ok {
				return cloneWorkflow(w), nil
			}
			return nil, notFound(name)
		},
		FindWorkflowsFn: func(ctx context.Context, accountID string) ([]*herald.Workflow, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindWorkflows"); err != nil {
				return nil, err
			}
			var out []*herald.Workflow
			for ref, w := range m.flows.byRef {
				if ref.AccountID == accountID {
					out = append(out, cloneWorkflow(w))
				}
			}
			slices.SortFunc(out, func(a, b *herald.Workflow) int { return strings.Compare(a.Name, b.Name) })
			return out, nil
		},
		UpdateWorkflowFn: func(ctx context.Context, w *herald.Workflow) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("UpdateWorkflow"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: w.AccountID, ID: w.Name}
			old, ok := m.flows.byRef[ref]
			if !ok {
				return notFound(w.Name)
			}
			c := cloneWorkflow(w)
			c.State, c.Cursor, c.Secret, c.CreatedAt = old.State, old.Cursor, old.Secret, old.CreatedAt
			if err := m.change(ctx, w.AccountID, herald.SubjectWorkflow, w.Name, herald.VerbUpdated, old, c); err != nil {
				return err
			}
			m.flows.byRef[ref] = c
			return nil
		},
		SetWorkflowStateFn: func(ctx context.Context, accountID, name, state string) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("SetWorkflowState"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: accountID, ID: name}
			old, ok := m.flows.byRef[ref]
			if !ok {
				return notFound(name)
			}
			c := cloneWorkflow(old)
			c.State, c.UpdatedAt = state, m.now().UTC().Truncate(time.Microsecond)
			if err := m.change(ctx, accountID, herald.SubjectWorkflow, name, herald.VerbUpdated, old, c); err != nil {
				return err
			}
			m.flows.byRef[ref] = c
			return nil
		},
		DeleteWorkflowFn: func(ctx context.Context, accountID, name string) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("DeleteWorkflow"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: accountID, ID: name}
			old, ok := m.flows.byRef[ref]
			if !ok {
				return notFound(name)
			}
			if err := m.change(ctx, accountID, herald.SubjectWorkflow, name, herald.VerbDeleted, old, nil); err != nil {
				return err
			}
			delete(m.flows.byRef, ref)
			delete(m.flows.runs, ref)
			return nil
		},
		FindWorkflowRunFn: func(ctx context.Context, accountID, id string) (*herald.WorkflowRun, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindWorkflowRun"); err != nil {
				return nil, err
			}
			for ref, runs := range m.flows.runs {
				for _, r := range runs {
					if ref.AccountID == accountID && r.ID == id {
						return cloneJSON(r), nil
					}
				}
			}
			return nil, herald.Errorf(herald.ENOTFOUND, "no run %s", id)
		},
		FindWorkflowRunsFn: func(ctx context.Context, accountID, name string, f herald.RunFilter) ([]*herald.WorkflowRun, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindWorkflowRuns"); err != nil {
				return nil, err
			}
			runs := m.flows.runs[herald.Ref{AccountID: accountID, ID: name}]
			end := len(runs)
			if f.BeforeID != "" {
				end = slices.IndexFunc(runs, func(r *herald.WorkflowRun) bool { return r.ID == f.BeforeID })
			}
			var out []*herald.WorkflowRun
			for i := end - 1; i >= 0 && (f.Limit <= 0 || len(out) < f.Limit); i-- {
				if r := runs[i]; (f.State == "" || r.State == f.State) && (f.EventID == "" || r.EventID == f.EventID) {
					out = append(out, cloneJSON(r))
				}
			}
			return out, nil
		},
	}
}

func (m *memStore) workService() *mock.WorkService {
	notFound := func(id string) error { return herald.Errorf(herald.ENOTFOUND, "no job %s", id) }
	// update replaces the job of ref with what change makes of a copy,
	// writing the updated system event; the caller holds m.mu.
	update := func(ctx context.Context, ref herald.Ref, change func(c *herald.Work) bool) error {
		old, ok := m.jobs.byRef[ref]
		if !ok {
			return notFound(ref.ID)
		}
		c := cloneWork(old)
		if !change(c) {
			return nil
		}
		if err := m.change(ctx, ref.AccountID, herald.SubjectWork, ref.ID, herald.VerbUpdated, old, c); err != nil {
			return err
		}
		m.jobs.byRef[ref] = c
		return nil
	}
	return &mock.WorkService{
		CreateWorkFn: func(ctx context.Context, w *herald.Work) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("CreateWork"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: w.AccountID, ID: w.ID}
			if _, ok := m.jobs.byRef[ref]; ok {
				return herald.Errorf(herald.ECONFLICT, "job %s exists", w.ID)
			}
			c := cloneWork(w)
			if c.Secret == "" {
				c.Secret = herald.NewSigningSecret()
			}
			c.PrepareCreate(m.seq[w.AccountID], m.now())
			if err := m.change(ctx, w.AccountID, herald.SubjectWork, w.ID, herald.VerbCreated, nil, c); err != nil {
				return err
			}
			m.jobs.byRef[ref] = c
			m.jobs.order = append(m.jobs.order, ref)
			return nil
		},
		FindWorkFn: func(ctx context.Context, accountID, id string) (*herald.Work, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindWork"); err != nil {
				return nil, err
			}
			if w, ok := m.jobs.byRef[herald.Ref{AccountID: accountID, ID: id}]; ok {
				return cloneWork(w), nil
			}
			return nil, notFound(id)
		},
		FindWorksFn: func(ctx context.Context, accountID, kind string) ([]*herald.Work, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindWorks"); err != nil {
				return nil, err
			}
			var out []*herald.Work
			for _, ref := range m.jobs.order {
				if w, ok := m.jobs.byRef[ref]; ok && ref.AccountID == accountID && (kind == "" || w.Kind == kind) {
					out = append(out, cloneWork(w))
				}
			}
			return out, nil
		},
		UpdateWorkFn: func(ctx context.Context, w *herald.Work) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("UpdateWork"); err != nil {
				return err
			}
			return update(ctx, herald.Ref{AccountID: w.AccountID, ID: w.ID}, func(c *herald.Work) bool {
				c.Name, c.Filter, c.Export, c.Alert, c.UpdatedAt = w.Name, w.Filter, w.Export, w.Alert, w.UpdatedAt
				*c = *cloneWork(c) // share nothing with the caller
				return true
			})
		},
		SetWorkStateFn: func(ctx context.Context, accountID, id, state, reason string) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("SetWorkState"); err != nil {
				return err
			}
			return update(ctx, herald.Ref{AccountID: accountID, ID: id}, func(c *herald.Work) bool {
				return c.ChangeState(state, reason, m.now())
			})
		},
		RunWorkNowFn: func(ctx context.Context, accountID, id string, at time.Time) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("RunWorkNow"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: accountID, ID: id}
			w, ok := m.jobs.byRef[ref]
			if !ok {
				return notFound(id)
			}
			at = at.UTC()
			w.RunNowAt = &at
			return nil
		},
		DeleteWorkFn: func(ctx context.Context, accountID, id string) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("DeleteWork"); err != nil {
				return err
			}
			ref := herald.Ref{AccountID: accountID, ID: id}
			old, ok := m.jobs.byRef[ref]
			if !ok {
				return notFound(id)
			}
			if err := m.change(ctx, accountID, herald.SubjectWork, id, herald.VerbDeleted, old, nil); err != nil {
				return err
			}
			delete(m.jobs.byRef, ref)
			delete(m.jobs.records, ref)
			return nil
		},
		FindWorkRecordsFn: func(ctx context.Context, accountID, id string, f herald.WorkRecordFilter) ([]*herald.WorkRecord, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if err := m.failed("FindWorkRecords"); err != nil {
				return nil, err
			}
			ref := herald.Ref{AccountID: accountID, ID: id}
			if _, ok := m.jobs.byRef[ref]; !ok {
				return nil, notFound(id)
			}
			list := m.jobs.records[ref]
			var out []*herald.WorkRecord
			for i := len(list) - 1; i >= 0 && (f.Limit <= 0 || len(out) < f.Limit); i-- {
				if f.BeforeID == 0 || list[i].ID < f.BeforeID {
					c := *list[i]
					out = append(out, &c)
				}
			}
			return out, nil
		},
	}
}

// addRun stores a run of a workflow, as its engine would.
func (m *memStore) addRun(accountID string, r herald.WorkflowRun) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ref := herald.Ref{AccountID: accountID, ID: r.Workflow}
	r.AccountID = accountID
	m.flows.runs[ref] = append(m.flows.runs[ref], &r)
}

// addRecord stores a record of a job's history, as its engine would, and
// returns its id.
func (m *memStore) addRecord(accountID string, rec herald.WorkRecord) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs.recordID++
	rec.ID = m.jobs.recordID
	ref := herald.Ref{AccountID: accountID, ID: rec.WorkID}
	m.jobs.records[ref] = append(m.jobs.records[ref], &rec)
	return rec.ID
}

// setWork changes a stored job in place, as its engine would.
func (m *memStore) setWork(accountID, id string, change func(w *herald.Work)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	change(m.jobs.byRef[herald.Ref{AccountID: accountID, ID: id}])
}

// storedWorkflow and storedWork return what the store holds, secrets
// included; nil if there is none.
func (m *memStore) storedWorkflow(accountID, name string) *herald.Workflow {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, ok := m.flows.byRef[herald.Ref{AccountID: accountID, ID: name}]; ok {
		return cloneWorkflow(w)
	}
	return nil
}

func (m *memStore) storedWork(accountID, id string) *herald.Work {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, ok := m.jobs.byRef[herald.Ref{AccountID: accountID, ID: id}]; ok {
		return cloneWork(w)
	}
	return nil
}

// firstWork returns the id of the account's first job, "work_none" if it
// has none.
func (e *env) firstWork(accountID string) string {
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	for _, ref := range e.store.jobs.order {
		if _, ok := e.store.jobs.byRef[ref]; ok && ref.AccountID == accountID {
			return ref.ID
		}
	}
	return "work_none"
}
