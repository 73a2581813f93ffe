package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

// wantStatus fails unless err is an *Error of status.
func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status {
		t.Errorf("%s: error %v, want %d", what, err, status)
	}
}

func TestEventTypes(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()

	def := &herald.EventType{
		Category: "orders", Type: "orderPlaced", Description: "An order",
		Schema:           json.RawMessage(`{"type":"object","required":["total"]}`),
		Statuses:         []herald.StatusDef{{Name: "placed", Description: "placed"}, {Name: "shipped", Description: "shipped", Persist: true}},
		TerminalStatuses: []string{"shipped"},
	}
	got, err := c.PutEventType(ctx, def)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key() != "orders/orderPlaced" || len(got.Statuses) != 2 || got.CreatedAt.IsZero() {
		t.Errorf("put: %+v", got)
	}
	// The type now validates events.
	_, err = c.Send(ctx, &herald.Event{Category: "orders", Type: "orderPlaced", Data: json.RawMessage(`{}`)})
	wantStatus(t, "event without total", err, 400)

	if got, err = c.EventType(ctx, "orders", "orderPlaced"); err != nil || got.Description != "An order" {
		t.Errorf("get: %+v, %v", got, err)
	}
	list, err := c.EventTypes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(list, func(t *herald.EventType) bool { return t.Key() == "orders/orderPlaced" }) ||
		!slices.ContainsFunc(list, func(t *herald.EventType) bool { return t.Key() == "authentication/login" && t.BuiltIn }) {
		t.Errorf("list has %d types, without ours or the built-in login", len(list))
	}
	_, err = c.CreateEventType(ctx, def)
	wantStatus(t, "create again", err, 409)
	if err := c.DeleteEventType(ctx, "orders", "orderPlaced"); err != nil {
		t.Fatal(err)
	}
	_, err = c.EventType(ctx, "orders", "orderPlaced")
	wantStatus(t, "get deleted", err, 404)
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()

	sub, secret, err := c.CreateSubscription(ctx, &herald.Subscription{
		Name: "crm", URL: "https://crm.example.com/hook",
		Filter:  herald.Filter{Categories: []string{"payments"}},
		Headers: map[string]string{"X-Team": "risk"},
		Timeout: herald.Duration(3 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	if sub.ID == "" || !strings.HasPrefix(secret, "whsec_") || sub.State != herald.SubscriptionActive ||
		sub.Timeout != herald.Duration(3*time.Second) || sub.MaxInFlight == 0 {
		t.Errorf("created %+v, secret %q", sub, secret)
	}

	sub.Name = "crm-2"
	sub.Ordered = true
	updated, err := c.UpdateSubscription(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Name != "crm-2" || !updated.Ordered || updated.ID != sub.ID {
		t.Errorf("updated %+v", updated)
	}
	if s, err := c.PauseSubscription(ctx, sub.ID); err != nil || s.State != herald.SubscriptionPaused {
		t.Errorf("paused: %+v, %v", s, err)
	}
	if s, err := c.ResumeSubscription(ctx, sub.ID); err != nil || s.State != herald.SubscriptionActive {
		t.Errorf("resumed: %+v, %v", s, err)
	}
	if s, err := c.Subscription(ctx, sub.ID); err != nil || s.Name != "crm-2" {
		t.Errorf("get: %+v, %v", s, err)
	}
	list, err := c.Subscriptions(ctx)
	if err != nil || len(list) != 1 || list[0].ID != sub.ID {
		t.Errorf("list: %v, %v", list, err)
	}
	if err := c.DeleteSubscription(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.Subscription(ctx, sub.ID)
	wantStatus(t, "get deleted", err, 404)

	// A bad definition names its fields.
	_, _, err = c.CreateSubscription(ctx, &herald.Subscription{URL: "ftp://x"})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 400 || len(e.Errors) == 0 || e.Errors[0].Pointer != "/url" {
		t.Errorf("bad URL: %v", err)
	}
}

func TestWorkflows(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()

	wf, err := c.CreateWorkflow(ctx, &herald.Workflow{
		Name: "vip", Description: "Marks VIPs",
		Filter: &herald.Filter{Types: []string{"vipSeen"}},
		Steps:  []*herald.WorkflowStep{{Target: herald.Target{Kind: herald.StepSetAttributes}, Attributes: map[string]any{"vip": true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if wf.Name != "vip" || wf.State != herald.WorkflowActive || len(wf.Steps) != 1 || wf.MaxDepth == 0 {
		t.Errorf("created %+v", wf)
	}
	_, err = c.CreateWorkflow(ctx, &herald.Workflow{Name: "vip", Steps: wf.Steps})
	wantStatus(t, "create again", err, 409)

	wf.Description = "Changed"
	if got, err := c.UpdateWorkflow(ctx, wf); err != nil || got.Description != "Changed" {
		t.Errorf("updated %+v, %v", got, err)
	}
	if got, err := c.PauseWorkflow(ctx, "vip"); err != nil || got.State != herald.WorkflowPaused {
		t.Errorf("paused %+v, %v", got, err)
	}
	if got, err := c.ResumeWorkflow(ctx, "vip"); err != nil || got.State != herald.WorkflowActive {
		t.Errorf("resumed %+v, %v", got, err)
	}
	if runs, err := c.WorkflowRuns(ctx, "vip"); err != nil || len(runs) != 0 {
		t.Errorf("runs %v, %v", runs, err)
	}
	if list, err := c.Workflows(ctx); err != nil || len(list) != 1 {
		t.Errorf("list %v, %v", list, err)
	}
	if got, err := c.Workflow(ctx, "vip"); err != nil || got.Description != "Changed" {
		t.Errorf("get %+v, %v", got, err)
	}
	if err := c.DeleteWorkflow(ctx, "vip"); err != nil {
		t.Fatal(err)
	}
	_, err = c.WorkflowRuns(ctx, "vip")
	wantStatus(t, "runs of deleted", err, 404)
}

func TestWork(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()

	x, err := c.CreateExport(ctx, &herald.Work{
		Name: "siem", Filter: herald.Filter{Origin: herald.OriginSystem},
		Export: &herald.ExportConfig{Mode: herald.ExportBatch, Every: herald.Duration(time.Hour),
			Destination: herald.Destination{Type: herald.DestinationWebhook, URL: "https://siem.example.com/in"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if x.ID == "" || x.Kind != herald.WorkExport || x.State != herald.WorkActive {
		t.Errorf("export %+v", x)
	}
	a, err := c.CreateAlert(ctx, &herald.Work{
		Name: "failures", Filter: herald.Filter{Statuses: []string{"failed"}},
		Alert: &herald.AlertConfig{Threshold: 1, Target: herald.Target{Kind: herald.TargetWebhook, URL: "https://ops.example.com/hook"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != herald.WorkAlert {
		t.Errorf("alert %+v", a)
	}

	for kind, want := range map[string]int{"": 2, herald.WorkExport: 1, herald.WorkAlert: 1} {
		if list, err := c.Works(ctx, kind); err != nil || len(list) != want {
			t.Errorf("Works(%q): %d, %v", kind, len(list), err)
		}
	}
	if got, err := c.RunWork(ctx, x.ID); err != nil || got.RunNowAt == nil {
		t.Errorf("run %+v, %v", got, err)
	}
	_, err = c.RunWork(ctx, a.ID)
	wantStatus(t, "run an alert", err, 409)
	if got, err := c.PauseWork(ctx, a.ID); err != nil || got.State != herald.WorkPaused {
		t.Errorf("paused %+v, %v", got, err)
	}
	if got, err := c.ResumeWork(ctx, a.ID); err != nil || got.State != herald.WorkActive {
		t.Errorf("resumed %+v, %v", got, err)
	}
	a.Name = "failures-2"
	if got, err := c.UpdateWork(ctx, a); err != nil || got.Name != "failures-2" {
		t.Errorf("updated %+v, %v", got, err)
	}
	if got, err := c.Work(ctx, a.ID); err != nil || got.Name != "failures-2" {
		t.Errorf("get %+v, %v", got, err)
	}
	if err := c.DeleteWork(ctx, x.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.Work(ctx, x.ID)
	wantStatus(t, "get deleted", err, 404)
}

func TestKeys(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	c := newClient(t, srv.URL, srv.Key)
	ctx := context.Background()

	k, secret, err := c.CreateKey(ctx, "reader", []string{herald.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	if k.ID == "" || secret == "" || !strings.HasPrefix(secret, k.Prefix) || !slices.Equal(k.Scopes, []string{"read"}) {
		t.Errorf("key %+v, secret %q", k, secret)
	}
	reader := newClient(t, srv.URL, secret)
	if _, err := reader.EventTypes(ctx); err != nil {
		t.Errorf("the new key cannot read: %v", err)
	}
	_, err = reader.Send(ctx, &herald.Event{Category: "a", Type: "b"})
	wantStatus(t, "read key sends", err, 403)

	keys, err := c.Keys(ctx)
	if err != nil || !slices.ContainsFunc(keys, func(x *herald.APIKey) bool { return x.ID == k.ID }) {
		t.Errorf("keys %v, %v", keys, err)
	}
	if err := c.DeleteKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	_, err = reader.EventTypes(ctx)
	wantStatus(t, "deleted key", err, 401)
	_, _, err = c.CreateKey(ctx, "bad", []string{"write"})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 400 || e.Errors[0].Pointer != "/scopes/0" {
		t.Errorf("bad scope: %v", err)
	}
}
