package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/heraldhq/herald"
)

// The members of each definition that Herald sets: POST refuses them,
// so they are left out of what is sent (PUT would ignore them).
var (
	subscriptionReadOnly = []string{"id", "state", "stateReason", "failingSince", "cursor", "createdAt", "updatedAt"}
	workflowReadOnly     = []string{"state", "cursor", "createdAt", "updatedAt"}
	workReadOnly         = []string{"id", "kind", "state", "stateReason", "runtime", "runNowAt", "createdAt", "updatedAt", "nextRunAt"}
)

// definition encodes v without the members Herald sets.
func definition(v any, readOnly []string) (map[string]json.RawMessage, error) {
	b, err := encodeJSON(v)
	if err != nil {
		return nil, err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return nil, err
	}
	for _, k := range readOnly {
		delete(members, k)
	}
	return members, nil
}

func (c *Client) get(ctx context.Context, path string, query url.Values, out any) error {
	return c.call(ctx, &request{method: http.MethodGet, path: path, query: query}, nil, out)
}

// post calls a route that creates something the server cannot recognise
// when it comes again: retried only when the server did not act on it.
func (c *Client) post(ctx context.Context, path string, in, out any) error {
	return c.call(ctx, &request{method: http.MethodPost, path: path, policy: retryUnsent}, in, out)
}

// postSafe calls a POST route that may be repeated (pause, resume, run).
func (c *Client) postSafe(ctx context.Context, path string, out any) error {
	return c.call(ctx, &request{method: http.MethodPost, path: path}, nil, out)
}

func (c *Client) put(ctx context.Context, path string, in, out any) error {
	return c.call(ctx, &request{method: http.MethodPut, path: path}, in, out)
}

func (c *Client) delete(ctx context.Context, path string) error {
	return c.call(ctx, &request{method: http.MethodDelete, path: path}, nil, nil)
}

// Event types.

// EventTypes lists the account's event types, the built-in ones included.
func (c *Client) EventTypes(ctx context.Context) ([]*herald.EventType, error) {
	var out struct {
		EventTypes []*herald.EventType `json:"eventTypes"`
	}
	if err := c.get(ctx, "/v1/event-types", nil, &out); err != nil {
		return nil, err
	}
	return out.EventTypes, nil
}

// EventType returns one event type.
func (c *Client) EventType(ctx context.Context, category, typ string) (*herald.EventType, error) {
	var t herald.EventType
	if err := c.get(ctx, pathOf("event-types", category, typ), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateEventType adds a type (POST /v1/event-types); it fails with 409
// when the account has it already.
func (c *Client) CreateEventType(ctx context.Context, t *herald.EventType) (*herald.EventType, error) {
	var out herald.EventType
	if err := c.post(ctx, "/v1/event-types", t, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutEventType creates or replaces the type t names, or extends a
// built-in one, and returns it as the account now has it.
func (c *Client) PutEventType(ctx context.Context, t *herald.EventType) (*herald.EventType, error) {
	var out herald.EventType
	if err := c.put(ctx, pathOf("event-types", t.Category, t.Type), t, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteEventType deletes a type of the account, or undoes its changes to
// a built-in one. Its events are kept.
func (c *Client) DeleteEventType(ctx context.Context, category, typ string) error {
	return c.delete(ctx, pathOf("event-types", category, typ))
}

// Subscriptions.

// Subscriptions lists the account's subscriptions.
func (c *Client) Subscriptions(ctx context.Context) ([]*herald.Subscription, error) {
	var out struct {
		Subscriptions []*herald.Subscription `json:"subscriptions"`
	}
	if err := c.get(ctx, "/v1/subscriptions", nil, &out); err != nil {
		return nil, err
	}
	return out.Subscriptions, nil
}

// Subscription returns one subscription.
func (c *Client) Subscription(ctx context.Context, id string) (*herald.Subscription, error) {
	var s herald.Subscription
	if err := c.get(ctx, pathOf("subscriptions", id), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// CreateSubscription makes a subscription from what s defines (its URL,
// filter, headers, template, limits); the members Herald sets are not
// sent. It returns the subscription as stored and its signing secret,
// which no later answer shows.
func (c *Client) CreateSubscription(ctx context.Context, s *herald.Subscription) (*herald.Subscription, string, error) {
	def, err := definition(s, subscriptionReadOnly)
	if err != nil {
		return nil, "", fmt.Errorf("client: CreateSubscription: %w", err)
	}
	var out struct {
		herald.Subscription
		Secret string `json:"secret"`
	}
	if err := c.post(ctx, "/v1/subscriptions", def, &out); err != nil {
		return nil, "", err
	}
	return &out.Subscription, out.Secret, nil
}

// UpdateSubscription replaces what a client defines of subscription s.ID.
func (c *Client) UpdateSubscription(ctx context.Context, s *herald.Subscription) (*herald.Subscription, error) {
	def, err := definition(s, subscriptionReadOnly)
	if err != nil {
		return nil, fmt.Errorf("client: UpdateSubscription: %w", err)
	}
	var out herald.Subscription
	if err := c.put(ctx, pathOf("subscriptions", s.ID), def, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteSubscription deletes a subscription with its messages and
// attempts.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	return c.delete(ctx, pathOf("subscriptions", id))
}

// PauseSubscription stops deliveries; what is stored meanwhile is
// delivered once it is resumed.
func (c *Client) PauseSubscription(ctx context.Context, id string) (*herald.Subscription, error) {
	var out herald.Subscription
	if err := c.postSafe(ctx, pathOf("subscriptions", id, "pause"), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResumeSubscription makes a paused or disabled subscription active.
func (c *Client) ResumeSubscription(ctx context.Context, id string) (*herald.Subscription, error) {
	var out herald.Subscription
	if err := c.postSafe(ctx, pathOf("subscriptions", id, "resume"), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Workflows.

// Workflows lists the account's workflows.
func (c *Client) Workflows(ctx context.Context) ([]*herald.Workflow, error) {
	var out struct {
		Workflows []*herald.Workflow `json:"workflows"`
	}
	if err := c.get(ctx, "/v1/workflows", nil, &out); err != nil {
		return nil, err
	}
	return out.Workflows, nil
}

// Workflow returns one workflow.
func (c *Client) Workflow(ctx context.Context, name string) (*herald.Workflow, error) {
	var wf herald.Workflow
	if err := c.get(ctx, pathOf("workflows", name), nil, &wf); err != nil {
		return nil, err
	}
	return &wf, nil
}

// CreateWorkflow makes the workflow wf defines. A workflow is named by
// its Name, so a repeat fails with 409 rather than making a second one.
func (c *Client) CreateWorkflow(ctx context.Context, wf *herald.Workflow) (*herald.Workflow, error) {
	def, err := definition(wf, workflowReadOnly)
	if err != nil {
		return nil, fmt.Errorf("client: CreateWorkflow: %w", err)
	}
	var out herald.Workflow
	if err := c.post(ctx, "/v1/workflows", def, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateWorkflow replaces what a client defines of workflow wf.Name.
func (c *Client) UpdateWorkflow(ctx context.Context, wf *herald.Workflow) (*herald.Workflow, error) {
	def, err := definition(wf, workflowReadOnly)
	if err != nil {
		return nil, fmt.Errorf("client: UpdateWorkflow: %w", err)
	}
	var out herald.Workflow
	if err := c.put(ctx, pathOf("workflows", wf.Name), def, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteWorkflow deletes a workflow with its runs.
func (c *Client) DeleteWorkflow(ctx context.Context, name string) error {
	return c.delete(ctx, pathOf("workflows", name))
}

// PauseWorkflow stops a workflow from starting runs.
func (c *Client) PauseWorkflow(ctx context.Context, name string) (*herald.Workflow, error) {
	var out herald.Workflow
	if err := c.postSafe(ctx, pathOf("workflows", name, "pause"), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResumeWorkflow makes a paused workflow start runs again.
func (c *Client) ResumeWorkflow(ctx context.Context, name string) (*herald.Workflow, error) {
	var out herald.Workflow
	if err := c.postSafe(ctx, pathOf("workflows", name, "resume"), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WorkflowRuns returns every run of a workflow, newest first, fetching
// page after page.
func (c *Client) WorkflowRuns(ctx context.Context, name string) ([]*herald.WorkflowRun, error) {
	var runs []*herald.WorkflowRun
	before := ""
	for {
		q := url.Values{"limit": {"500"}}
		if before != "" {
			q.Set("before", before)
		}
		var page struct {
			Runs    []*herald.WorkflowRun `json:"runs"`
			Next    string                `json:"next"`
			HasMore bool                  `json:"hasMore"`
		}
		if err := c.get(ctx, pathOf("workflows", name, "runs"), q, &page); err != nil {
			return nil, err
		}
		runs = append(runs, page.Runs...)
		if !page.HasMore || page.Next == "" {
			return runs, nil
		}
		before = page.Next
	}
}

// Work: export and alert jobs.

// Works lists the account's jobs: all of them when kind is empty, else
// those of kind (herald.WorkExport or herald.WorkAlert).
func (c *Client) Works(ctx context.Context, kind string) ([]*herald.Work, error) {
	var q url.Values
	if kind != "" {
		q = url.Values{"kind": {kind}}
	}
	var out struct {
		Work []*herald.Work `json:"work"`
	}
	if err := c.get(ctx, "/v1/work", q, &out); err != nil {
		return nil, err
	}
	return out.Work, nil
}

// Work returns one job.
func (c *Client) Work(ctx context.Context, id string) (*herald.Work, error) {
	var wk herald.Work
	if err := c.get(ctx, pathOf("work", id), nil, &wk); err != nil {
		return nil, err
	}
	return &wk, nil
}

// CreateExport makes the export job w defines; it starts at once.
func (c *Client) CreateExport(ctx context.Context, w *herald.Work) (*herald.Work, error) {
	return c.createWork(ctx, "/v1/exports", "CreateExport", w)
}

// CreateAlert makes the alert job w defines; it starts at once.
func (c *Client) CreateAlert(ctx context.Context, w *herald.Work) (*herald.Work, error) {
	return c.createWork(ctx, "/v1/alerts", "CreateAlert", w)
}

func (c *Client) createWork(ctx context.Context, path, name string, w *herald.Work) (*herald.Work, error) {
	def, err := definition(w, workReadOnly)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", name, err)
	}
	var out herald.Work
	if err := c.post(ctx, path, def, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateWork replaces what a client defines of job w.ID (name, filter,
// export or alert). Secrets sent back as a GET showed them (masked) are
// kept.
func (c *Client) UpdateWork(ctx context.Context, w *herald.Work) (*herald.Work, error) {
	def, err := definition(w, workReadOnly)
	if err != nil {
		return nil, fmt.Errorf("client: UpdateWork: %w", err)
	}
	var out herald.Work
	if err := c.put(ctx, pathOf("work", w.ID), def, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteWork deletes a job with its history.
func (c *Client) DeleteWork(ctx context.Context, id string) error {
	return c.delete(ctx, pathOf("work", id))
}

// PauseWork stops a job where it is.
func (c *Client) PauseWork(ctx context.Context, id string) (*herald.Work, error) {
	return c.workAction(ctx, id, "pause")
}

// ResumeWork makes a paused or failed job active again.
func (c *Client) ResumeWork(ctx context.Context, id string) (*herald.Work, error) {
	return c.workAction(ctx, id, "resume")
}

// RunWork asks an active batch export for a cycle now; it answers before
// the cycle runs.
func (c *Client) RunWork(ctx context.Context, id string) (*herald.Work, error) {
	return c.workAction(ctx, id, "run")
}

func (c *Client) workAction(ctx context.Context, id, action string) (*herald.Work, error) {
	var out herald.Work
	if err := c.postSafe(ctx, pathOf("work", id, action), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Keys.

// Keys lists the API keys of the account, without their secrets.
func (c *Client) Keys(ctx context.Context) ([]*herald.APIKey, error) {
	var out struct {
		Keys []*herald.APIKey `json:"keys"`
	}
	if err := c.get(ctx, "/v1/keys", nil, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// CreateKey makes a key with scopes (herald.ScopeIngest, ScopeRead,
// ScopeAdmin) and returns it with its secret, which no later answer
// shows.
func (c *Client) CreateKey(ctx context.Context, name string, scopes []string) (*herald.APIKey, string, error) {
	in := struct {
		Name   string   `json:"name,omitempty"`
		Scopes []string `json:"scopes"`
	}{name, scopes}
	var out struct {
		herald.APIKey
		Secret string `json:"secret"`
	}
	if err := c.post(ctx, "/v1/keys", in, &out); err != nil {
		return nil, "", err
	}
	return &out.APIKey, out.Secret, nil
}

// DeleteKey deletes a key of the account (not the one the client uses).
func (c *Client) DeleteKey(ctx context.Context, id string) error {
	return c.delete(ctx, pathOf("keys", id))
}
