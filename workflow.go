package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// Kinds of workflow step, besides the Target kinds (webhook, email,
// slack), which send a message.
const (
	// StepSetAttributes sets attributes on an entity's profile, by
	// appending a profiles/profileAttributesSet event for it.
	StepSetAttributes = "setAttributes"
	// StepEmitEvent appends an event.
	StepEmitEvent = "emitEvent"
	// StepEndSession ends a session, by appending an
	// authentication/sessionEnded event in it.
	StepEndSession = "endSession"
)

// States of a workflow (and of a work job while it runs).
const (
	WorkflowActive = "active"
	WorkflowPaused = "paused"
)

// ValidWorkflowState reports whether state is one of the states.
func ValidWorkflowState(state string) bool { return state == WorkflowActive || state == WorkflowPaused }

// Defaults and limits of workflows.
const (
	DefaultWorkflowMaxDepth = 5
	MaxWorkflowSteps        = 20
)

// DefaultStepRetrySchedule is when a failed step is tried again: about 5 s,
// 30 s, 2 min and 10 min after, with jitter. Then the run fails.
func DefaultStepRetrySchedule() []Duration {
	return []Duration{Duration(5 * time.Second), Duration(30 * time.Second), Duration(2 * time.Minute), Duration(10 * time.Minute)}
}

// Workflow is a named automation (DESIGN.md §6): each event that matches
// its Filter, or whose type's status names it (StatusDef.Workflows),
// starts a run that performs the Steps in order.
type Workflow struct {
	AccountID   string `json:"-"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Filter, when set, triggers a run for each event stored after the
	// workflow was made that matches it. Without one, only status rules
	// trigger it. A workflow is never triggered by the system events
	// about itself.
	Filter *Filter         `json:"filter,omitempty"`
	Steps  []*WorkflowStep `json:"steps"`
	// MaxDepth stops a chain of runs, each triggered by an event the
	// previous one emitted, at this many runs: the run that would go
	// deeper fails instead of running.
	MaxDepth int `json:"maxDepth"`

	// Secret signs the requests of its webhook steps (Standard Webhooks,
	// whsec_…). The API shows it only at GET …/secret.
	Secret string `json:"-"`

	State string `json:"state"`
	// Cursor is the seq up to which the log has been read for triggers.
	Cursor    int64     `json:"cursor"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// WorkflowStep is one step of a workflow. Kind is a Target kind (the
// Target fields say where to send) or one of the Step kinds. Input, a
// Jsonnet program that sees the triggering event as event and the outputs
// of the earlier steps by name as steps, returns an object whose members
// replace the step's fields for this run: {"to": [event.data.email]}.
type WorkflowStep struct {
	Name string `json:"name"`
	Target
	// Attributes are set by StepSetAttributes on Entity's profile
	// (default: the triggering event's entity).
	Attributes map[string]any `json:"attributes,omitempty"`
	Entity     string         `json:"entity,omitempty"`
	// Event is what StepEmitEvent appends: an envelope as a client sends
	// it. Its id defaults to one derived from the run and the step, so a
	// step tried again stores one event.
	Event json.RawMessage `json:"event,omitempty"`
	// SessionID is the session StepEndSession ends (default: the
	// triggering event's).
	SessionID string `json:"sessionId,omitempty"`
	Input     string `json:"input,omitempty"`
	// RetrySchedule is when a failed attempt is tried again; after the
	// last, the run fails.
	RetrySchedule []Duration `json:"retrySchedule"`
	Timeout       Duration   `json:"timeout"`
}

var workflowNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// ValidWorkflowName reports whether name can name a workflow.
func ValidWorkflowName(name string) bool { return workflowNameRE.MatchString(name) }

// SetDefaults fills the fields left zero.
func (w *Workflow) SetDefaults() {
	if w.MaxDepth == 0 {
		w.MaxDepth = DefaultWorkflowMaxDepth
	}
	if w.State == "" {
		w.State = WorkflowActive
	}
	for i, s := range w.Steps {
		if s == nil {
			continue
		}
		s.Target.SetDefaults()
		if s.Name == "" {
			s.Name = fmt.Sprintf("%d-%s", i+1, s.Kind)
		}
		if s.RetrySchedule == nil {
			s.RetrySchedule = DefaultStepRetrySchedule()
		}
		if s.Timeout == 0 {
			s.Timeout = Duration(DefaultDeliveryTimeout)
		}
	}
}

// Validate checks what a client may set, naming the field at fault. The
// templates are compiled by the API (Templates lists them).
func (w *Workflow) Validate() error {
	var errs []FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)})
	}
	if !ValidWorkflowName(w.Name) {
		fail("/name", "must be 1 to 100 letters, digits, '-', '_' or '.', starting with a letter or digit")
	}
	if len(w.Description) > 1000 {
		fail("/description", "must be at most 1000 characters")
	}
	if w.Filter != nil {
		if err := w.Filter.Validate("/filter"); err != nil {
			errs = append(errs, err.(*Error).Fields...)
		}
	}
	if len(w.Steps) == 0 || len(w.Steps) > MaxWorkflowSteps {
		fail("/steps", "must have 1 to %d steps", MaxWorkflowSteps)
	}
	names := map[string]bool{}
	for i, s := range w.Steps {
		p := fmt.Sprintf("/steps/%d", i)
		if s == nil {
			fail(p, "must be a step object")
			continue
		}
		if !ValidWorkflowName(s.Name) {
			fail(p+"/name", "must be 1 to 100 letters, digits, '-', '_' or '.'")
		} else if names[s.Name] {
			fail(p+"/name", "must be unique in the workflow: %q names an earlier step", s.Name)
		}
		names[s.Name] = true
		errs = append(errs, s.validate(p)...)
	}
	if w.MaxDepth < 1 || w.MaxDepth > 20 {
		fail("/maxDepth", "must be between 1 and 20")
	}
	if w.State != WorkflowActive && w.State != WorkflowPaused {
		fail("/state", "must be %q or %q", WorkflowActive, WorkflowPaused)
	}
	return invalid(errs)
}

func (s *WorkflowStep) validate(p string) []FieldError {
	var errs []FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: p + pointer, Detail: fmt.Sprintf(format, args...)})
	}
	switch s.Kind {
	case TargetWebhook, TargetSlack, TargetEmail:
		// With an input template, fields it fills may be missing here:
		// they are checked when the step runs.
		if s.Input == "" {
			errs = append(errs, s.Target.Validate(p)...)
		}
	case StepSetAttributes:
		if len(s.Attributes) == 0 && s.Input == "" {
			fail("/attributes", "must set at least one attribute (or come from input)")
		}
	case StepEmitEvent:
		if len(s.Event) == 0 && s.Input == "" {
			fail("/event", "is required: the event to append, as a client sends it (or from input)")
		} else if len(s.Event) > 0 {
			var m map[string]json.RawMessage
			if json.Unmarshal(s.Event, &m) != nil {
				fail("/event", "must be an object: an event as a client sends it")
			}
		}
	case StepEndSession:
	default:
		fail("/kind", "must be one of webhook, email, slack, %s, %s, %s", StepSetAttributes, StepEmitEvent, StepEndSession)
	}
	if len(s.Entity) > maxFieldLength {
		fail("/entity", "must be at most 512 characters")
	}
	if len(s.SessionID) > MaxIDLength {
		fail("/sessionId", "must be at most %d characters", MaxIDLength)
	}
	if len(s.Input) > 64<<10 {
		fail("/input", "must be at most 64 KiB")
	}
	errs = append(errs, checkRetrySchedule(p+"/retrySchedule", s.RetrySchedule)...)
	if s.Timeout < Duration(time.Second) || s.Timeout > Duration(2*time.Minute) {
		fail("/timeout", "must be between 1s and 2m")
	}
	return errs
}

// Templates lists the workflow's Jsonnet programs with their pointers.
func (w *Workflow) Templates() []Template {
	var list []Template
	for i, s := range w.Steps {
		if s == nil {
			continue
		}
		if s.Input != "" {
			list = append(list, Template{fmt.Sprintf("/steps/%d/input", i), s.Input})
		}
		if s.JSONTemplate != "" {
			list = append(list, Template{fmt.Sprintf("/steps/%d/json_template", i), s.JSONTemplate})
		}
	}
	return list
}

// Redact returns a copy of w whose steps hold no secret: what the API
// returns and system events record.
func (w *Workflow) Redact() *Workflow {
	if w == nil {
		return nil
	}
	c := *w
	c.Steps = make([]*WorkflowStep, len(w.Steps))
	for i, s := range w.Steps {
		if s == nil {
			continue
		}
		sc := *s
		sc.Target = s.Target.Redact()
		c.Steps[i] = &sc
	}
	return &c
}

// AuditView is what system events record of a workflow.
func (w *Workflow) AuditView() any { return w.Redact() }

// PrepareCreate settles, as CreateWorkflow stores it, what a new workflow
// starts from: its cursor, lastSeq (the account's newest event, so that it
// is triggered by what is stored from now on), its state (active unless
// given) and its times, kept to the microsecond.
func (w *Workflow) PrepareCreate(lastSeq int64, now time.Time) {
	if w.State == "" {
		w.State = WorkflowActive
	}
	w.Cursor = lastSeq
	if w.CreatedAt.IsZero() {
		w.CreatedAt = now
	}
	w.CreatedAt = w.CreatedAt.UTC().Truncate(time.Microsecond)
	w.UpdatedAt = w.CreatedAt
}

// workflowRuntimeMembers are the members of a Workflow that stores keep in
// columns of their own (its name is its key), not in its definition.
var workflowRuntimeMembers = []string{"name", "state", "cursor", "createdAt", "updatedAt"}

// Definition returns what a client set of w (description, filter, steps,
// max depth) as JSON, as Subscription.Definition does; json.Unmarshal
// reads it back into a Workflow.
func (w *Workflow) Definition() ([]byte, error) { return definitionOf(w, workflowRuntimeMembers) }

// KeepSecrets puts back the secrets of old's steps of the same name that
// w, sent on an update, left out or sent back redacted.
func (w *Workflow) KeepSecrets(old *Workflow) {
	prev := map[string]*WorkflowStep{}
	for _, s := range old.Steps {
		if s != nil {
			prev[s.Name] = s
		}
	}
	for _, s := range w.Steps {
		if s != nil && prev[s.Name] != nil {
			s.Target.KeepSecrets(prev[s.Name].Target)
		}
	}
}

// Triggers of a run.
const (
	TriggerFilter = "filter" // the event matched the workflow's filter
	TriggerStatus = "status" // the event's type names the workflow for its status
)

// States of a run and of its steps.
const (
	RunPending    = "pending"   // waiting to start, or for a step's retry
	RunRunning    = "running"   // a node is performing it
	RunCompleted  = "completed" // every step succeeded
	RunFailed     = "failed"    // a step failed for good, or the depth limit stopped it
	StepPending   = "pending"
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
)

// WorkflowRun is one run of a workflow for one triggering event. Runs are
// kept: they are the workflow's history. Events a run emits carry
// agentType "workflow" and the run's id as agentId, which is how a run
// they trigger knows its depth.
type WorkflowRun struct {
	ID        string `json:"id"`
	AccountID string `json:"-"`
	Workflow  string `json:"workflow"`
	// EventID and Seq are the triggering event's.
	EventID string `json:"eventId"`
	Seq     int64  `json:"seq"`
	Trigger string `json:"trigger"`
	// Depth is 1 for a run triggered by an event no run emitted, else the
	// emitting run's depth plus 1.
	Depth int        `json:"depth"`
	State string     `json:"state"`
	Steps []*StepRun `json:"steps"`
	// Step is the index of the step to perform next.
	Step int `json:"step"`
	// NextAt is when the next attempt is due.
	NextAt     time.Time  `json:"nextAt,omitzero"`
	Error      string     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	UpdatedAt  time.Time  `json:"updatedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// StepRun is what became of one step of a run.
type StepRun struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// Output is the step's result: the HTTP status and response excerpt
	// of a webhook, the id of an emitted event, …
	Output     json.RawMessage `json:"output,omitempty"`
	Error      string          `json:"error,omitempty"`
	StartedAt  *time.Time      `json:"startedAt,omitempty"`
	FinishedAt *time.Time      `json:"finishedAt,omitempty"`
}

// Finished reports whether the run is over.
func (r *WorkflowRun) Finished() bool { return r.State == RunCompleted || r.State == RunFailed }

// PrepareStore settles r's times as a store keeps them, to the
// microsecond in UTC: CreatedAt and UpdatedAt left zero are now. A run
// without a state is pending.
func (r *WorkflowRun) PrepareStore(now time.Time) {
	if r.State == "" {
		r.State = RunPending
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = now
	}
	r.CreatedAt = r.CreatedAt.UTC().Truncate(time.Microsecond)
	r.UpdatedAt = r.UpdatedAt.UTC().Truncate(time.Microsecond)
	if !r.NextAt.IsZero() {
		r.NextAt = r.NextAt.UTC().Truncate(time.Microsecond)
	}
	if r.FinishedAt != nil {
		t := r.FinishedAt.UTC().Truncate(time.Microsecond)
		r.FinishedAt = &t
	}
}

// AgentTypeWorkflow marks the events a workflow run emits; their agentId
// is the run's id.
const AgentTypeWorkflow = "workflow"

// RunFilter selects runs; results are newest first.
type RunFilter struct {
	State   string
	EventID string
	// BeforeID pages: runs created before that run.
	BeforeID string
	Limit    int
}

// WorkflowService stores workflows and their runs. Each change writes its
// system event (subject type workflow, subject id the name) in the same
// commit.
type WorkflowService interface {
	// CreateWorkflow stores w; its Cursor is the account's last seq, so
	// it is triggered by what is stored from now on. ECONFLICT if the
	// name is taken.
	CreateWorkflow(ctx context.Context, w *Workflow) error
	// FindWorkflow returns ENOTFOUND if the account has none of that name.
	FindWorkflow(ctx context.Context, accountID, name string) (*Workflow, error)
	// FindWorkflows returns the account's workflows by name.
	FindWorkflows(ctx context.Context, accountID string) ([]*Workflow, error)
	// UpdateWorkflow replaces what a client sets (description, filter,
	// steps, max depth); state, cursor and times are kept.
	UpdateWorkflow(ctx context.Context, w *Workflow) error
	// SetWorkflowState pauses or resumes it (system event updated). A
	// paused workflow keeps reading its triggers but starts no run
	// until resumed: triggers meanwhile are skipped.
	SetWorkflowState(ctx context.Context, accountID, name, state string) error
	// DeleteWorkflow removes it with its runs.
	DeleteWorkflow(ctx context.Context, accountID, name string) error
	// FindWorkflowRun returns ENOTFOUND if the account has no such run.
	FindWorkflowRun(ctx context.Context, accountID, id string) (*WorkflowRun, error)
	// FindWorkflowRuns lists a workflow's runs, newest first.
	FindWorkflowRuns(ctx context.Context, accountID, name string, f RunFilter) ([]*WorkflowRun, error)
}

// WorkflowQueue is what the workflow engine needs of a store: leases on
// the workflows whose triggers it reads, and on the runs it performs.
type WorkflowQueue interface {
	// LeaseWorkflows returns the workflows of all accounts (active or
	// paused) that owner holds after the call, as LeaseSubscriptions.
	LeaseWorkflows(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*Workflow, error)
	// ReleaseWorkflows gives owner's workflow and run leases up.
	ReleaseWorkflows(ctx context.Context, owner string) error
	// EnqueueRuns stores runs (a run whose workflow and event already
	// have one is skipped) and moves the workflow's cursor to cursor, in
	// one commit, with the events (system events of runs stored already
	// failed). ECONFLICT if owner does not hold the workflow's lease.
	EnqueueRuns(ctx context.Context, accountID, workflow, owner string, cursor int64, runs []*WorkflowRun, events []*Event) error
	// ClaimRuns leases to owner, until now+ttl, up to max runs that are
	// pending and due by now, or running with a lease that ran out (their
	// node died), oldest first, and returns them.
	ClaimRuns(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*WorkflowRun, error)
	// SaveRun stores r's state and steps with the events (its workflow
	// system events, started, completed or failed) in one commit, and
	// extends its lease to leaseUntil, or frees it when r is finished or
	// pending. ECONFLICT if owner no longer holds the run.
	SaveRun(ctx context.Context, r *WorkflowRun, owner string, leaseUntil time.Time, events []*Event) error
}
