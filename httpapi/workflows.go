package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/heraldhq/herald"
)

// workflowReadOnly are the members Herald sets of a workflow. PUT accepts
// and ignores them, so that a workflow read with GET can be changed and
// sent back as it is; POST refuses them.
var workflowReadOnly = []string{"state", "cursor", "createdAt", "updatedAt"}

// runQueryParams are the query parameters of GET
// /v1/workflows/{name}/runs.
var runQueryParams = []string{"state", "limit", "before"}

// Pages of runs and of a job's history: a run holds its steps' outputs,
// so pages are shorter than those of events.
const (
	defaultRunPage = 50
	maxRunPage     = 500
)

// runStates are the states ?state= selects runs by.
var runStates = []string{herald.RunPending, herald.RunRunning, herald.RunCompleted, herald.RunFailed}

type workflowList struct {
	Workflows []*herald.Workflow `json:"workflows"`
}

// runPage is one page of GET /v1/workflows/{name}/runs. Next, set when
// older runs follow, is what to pass as ?before= for them.
type runPage struct {
	Runs    []*herald.WorkflowRun `json:"runs"`
	Next    string                `json:"next,omitempty"`
	HasMore bool                  `json:"hasMore"`
}

// secretAnswer answers GET …/secret of a workflow or a job.
type secretAnswer struct {
	Secret string `json:"secret"`
}

// workflowView is a workflow as the API shows it: without secrets (SMTP
// passwords and header values are herald.Redacted), and lists empty as [].
func workflowView(wf *herald.Workflow) *herald.Workflow {
	c := wf.Redact() // copies the steps: they may be changed here
	if c.Steps == nil {
		c.Steps = []*herald.WorkflowStep{}
	}
	for _, st := range c.Steps {
		if st != nil && st.RetrySchedule == nil {
			st.RetrySchedule = []herald.Duration{}
		}
	}
	return c
}

func workflowNotFound(name string) error {
	return herald.Errorf(herald.ENOTFOUND, "no workflow %q in this account", name)
}

// workflowErr maps a store error about workflow name: ENOTFOUND to the
// 404 that names it, anything else wrapped with what was done.
func workflowErr(err error, name, doing string) error {
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return workflowNotFound(name)
	}
	return fmt.Errorf("%s workflow %s: %w", doing, name, err)
}

// findWorkflow returns the workflow the path names, in the caller's
// account.
func (s *Server) findWorkflow(r *http.Request) (*herald.Workflow, error) {
	name := r.PathValue("name")
	if !herald.ValidWorkflowName(name) {
		return nil, workflowNotFound(name) // none could have this name
	}
	wf, err := s.workflows.FindWorkflow(r.Context(), keyFrom(r.Context()).AccountID, name)
	if err != nil {
		return nil, workflowErr(err, name, "find")
	}
	return wf, nil
}

// checkWorkflow sets wf's defaults, then checks it by its rules and
// compiles its programs, naming every field at fault after those that did
// not decode (decoded).
func (s *Server) checkWorkflow(wf *herald.Workflow, decoded []herald.FieldError) error {
	wf.SetDefaults()
	ruled, err := ruleErrors(wf.Validate(), "workflow")
	if err != nil {
		return err
	}
	compiled, err := s.compileTemplates(wf.Templates())
	if err != nil {
		return err
	}
	ruled = append(ruled, compiled...)
	for i, st := range wf.Steps {
		if st != nil {
			ruled = append(ruled, redactedLeft(fmt.Sprintf("/steps/%d", i), st.Headers, st.SMTP)...)
		}
	}
	return fieldErrors(joinErrors(decoded, ruled, unmoved))
}

// createWorkflow makes a workflow, named by its body. It is triggered by
// the events stored from now on.
func (s *Server) createWorkflow(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	members, err := readMembers(w, r, "a workflow")
	if err != nil {
		return err
	}
	wf := &herald.Workflow{}
	decoded := decodeDefinition(members, workflowReadOnly, false, wf)
	wf.AccountID = key.AccountID
	if err := s.checkWorkflow(wf, decoded); err != nil {
		return err
	}
	now := s.now().UTC().Truncate(timePrecision)
	wf.CreatedAt, wf.UpdatedAt = now, now
	switch err := s.workflows.CreateWorkflow(r.Context(), wf); {
	case herald.ErrorCode(err) == herald.ECONFLICT:
		return herald.Errorf(herald.ECONFLICT, "this account has a workflow named %q already: choose another name, or replace it with PUT /v1/workflows/%s", wf.Name, wf.Name)
	case err != nil:
		return fmt.Errorf("create workflow %s: %w", wf.Name, err)
	}
	stored, err := s.workflows.FindWorkflow(r.Context(), key.AccountID, wf.Name)
	if err != nil {
		return fmt.Errorf("read back workflow %s: %w", wf.Name, err)
	}
	s.onFlows()
	w.Header().Set("Location", "/v1/workflows/"+url.PathEscape(wf.Name))
	writeJSON(w, http.StatusCreated, workflowView(stored))
	return nil
}

// listWorkflows lists the account's workflows by name.
func (s *Server) listWorkflows(w http.ResponseWriter, r *http.Request) error {
	list, err := s.workflows.FindWorkflows(r.Context(), keyFrom(r.Context()).AccountID)
	if err != nil {
		return fmt.Errorf("find workflows: %w", err)
	}
	out := workflowList{Workflows: make([]*herald.Workflow, 0, len(list))}
	for _, wf := range list {
		out.Workflows = append(out.Workflows, workflowView(wf))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// answerWorkflow answers with the workflow the path names, as now stored.
func (s *Server) answerWorkflow(w http.ResponseWriter, r *http.Request, status int) error {
	wf, err := s.findWorkflow(r)
	if err != nil {
		return err
	}
	writeJSON(w, status, workflowView(wf))
	return nil
}

// getWorkflow answers one workflow, without its secrets.
func (s *Server) getWorkflow(w http.ResponseWriter, r *http.Request) error {
	return s.answerWorkflow(w, r, http.StatusOK)
}

// putWorkflow replaces what a client sets of a workflow: a member left out
// takes its default. State, cursor, secret and times are kept, and so
// are the step secrets sent back as read (herald.Redacted).
func (s *Server) putWorkflow(w http.ResponseWriter, r *http.Request) error {
	members, err := readMembers(w, r, "a workflow")
	if err != nil {
		return err
	}
	old, err := s.findWorkflow(r)
	if err != nil {
		return err
	}
	wf := &herald.Workflow{}
	decoded := decodeDefinition(members, workflowReadOnly, true, wf)
	// The name is the workflow's id: a rename would orphan its runs.
	var name string
	if raw, ok := members["name"]; ok && !isNull(raw) && json.Unmarshal(raw, &name) == nil && name != old.Name {
		decoded = append(decoded, herald.FieldError{Pointer: "/name",
			Detail: fmt.Sprintf("is %q but the path names workflow %q; leave it out or make them agree (a workflow is not renamed: create another)", name, old.Name)})
	}
	wf.Name, wf.AccountID = old.Name, old.AccountID
	wf.KeepSecrets(old)
	if err := s.checkWorkflow(wf, decoded); err != nil {
		return err
	}
	wf.UpdatedAt = s.now().UTC().Truncate(timePrecision)
	if err := s.workflows.UpdateWorkflow(r.Context(), wf); err != nil {
		return workflowErr(err, wf.Name, "update")
	}
	s.onFlows()
	return s.answerWorkflow(w, r, http.StatusOK)
}

// deleteWorkflow deletes a workflow with its runs. A run under way may
// finish its step.
func (s *Server) deleteWorkflow(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if !herald.ValidWorkflowName(name) {
		return workflowNotFound(name)
	}
	if err := s.workflows.DeleteWorkflow(r.Context(), keyFrom(r.Context()).AccountID, name); err != nil {
		return workflowErr(err, name, "delete")
	}
	s.onFlows()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// pauseWorkflow stops a workflow from starting runs: the events stored
// while it is paused trigger none, even once resumed. Runs under way go
// on.
func (s *Server) pauseWorkflow(w http.ResponseWriter, r *http.Request) error {
	return s.setWorkflowState(w, r, herald.WorkflowPaused)
}

// resumeWorkflow makes a paused workflow start runs again, for the events
// stored from now on.
func (s *Server) resumeWorkflow(w http.ResponseWriter, r *http.Request) error {
	return s.setWorkflowState(w, r, herald.WorkflowActive)
}

func (s *Server) setWorkflowState(w http.ResponseWriter, r *http.Request, state string) error {
	// The body may be left empty; there is nothing to say in it.
	if err := decodeOptionalJSON(w, r, &struct{}{}); err != nil {
		return err
	}
	wf, err := s.findWorkflow(r)
	if err != nil {
		return err
	}
	// Asking again for the state it has changes nothing, and writes no
	// system event.
	if wf.State != state {
		if err := s.workflows.SetWorkflowState(r.Context(), wf.AccountID, wf.Name, state); err != nil {
			return workflowErr(err, wf.Name, "set the state of")
		}
		s.onFlows()
	}
	return s.answerWorkflow(w, r, http.StatusOK)
}

// getWorkflowSecret answers the secret that signs the requests of the
// workflow's webhook steps.
func (s *Server) getWorkflowSecret(w http.ResponseWriter, r *http.Request) error {
	wf, err := s.findWorkflow(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, secretAnswer{Secret: wf.Secret})
	return nil
}

// findRuns answers one page of a workflow's runs, newest first: all of
// them, or those in one state.
func (s *Server) findRuns(w http.ResponseWriter, r *http.Request) error {
	var f herald.RunFilter
	var limit int
	p := &queryParser{q: r.URL.Query()}
	p.oneOf("state", runStates, &f.State)
	p.text("before", &f.BeforeID)
	p.limit(defaultRunPage, maxRunPage, &limit)
	if err := p.err(); err != nil {
		return err
	}
	wf, err := s.findWorkflow(r)
	if err != nil {
		return err
	}
	f.Limit = limit + 1 // one more tells whether there are more
	runs, err := s.workflows.FindWorkflowRuns(r.Context(), wf.AccountID, wf.Name, f)
	if err != nil {
		return workflowErr(err, wf.Name, "find the runs of")
	}
	var page runPage
	page.Runs, page.Next, page.HasMore = cutPage(runs, limit, func(run *herald.WorkflowRun) string { return run.ID })
	for i, run := range page.Runs {
		page.Runs[i] = runView(run)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// getRun answers one run of a workflow, with its steps.
func (s *Server) getRun(w http.ResponseWriter, r *http.Request) error {
	wf, err := s.findWorkflow(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	notFound := herald.Errorf(herald.ENOTFOUND, "no run %q of workflow %q", id, wf.Name)
	if len(id) > maxFilterLength {
		return notFound
	}
	run, err := s.workflows.FindWorkflowRun(r.Context(), wf.AccountID, id)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND:
		return notFound
	case err != nil:
		return fmt.Errorf("find run %s: %w", id, err)
	case run.Workflow != wf.Name:
		return notFound
	}
	writeJSON(w, http.StatusOK, runView(run))
	return nil
}

// runView is a run as the API shows it: its steps empty as [].
func runView(run *herald.WorkflowRun) *herald.WorkflowRun {
	if run.Steps != nil {
		return run
	}
	c := *run
	c.Steps = []*herald.StepRun{}
	return &c
}
