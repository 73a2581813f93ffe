package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// Secrets a workflow's or a job's definition holds, which no system event
// may record.
const (
	smtpPassword  = "smtp-pass-7c1e"
	headerToken   = "Bearer partner-token-93ab"
	dsnPassword   = "dsn-pass-51f0"
	workflowOwner = "reader"
)

// testWorkflows checks that a workflow is stored as given, that it starts
// reading the log at its end, that an update replaces its definition and
// nothing else, and that each change writes its system event in the same
// commit, with no secret in it.
func testWorkflows(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	admin := herald.Actor{ID: "key_admin", Type: herald.AgentTypeAPIKey}
	ctx := herald.NewContextWithActor(t.Context(), admin)
	base := quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	appendOne(t, s, "acme", page(t, "p1", "", "", baseTime), page(t, "p2", "", "", baseTime))
	last := base + 2

	// Created: it reads the log from its end as it was before the
	// commit, its own "created" event first, and gets a secret.
	w := fullWorkflow("acme", "notify")
	e := subChange(t, s, "acme", "CreateWorkflow", func() error { return s.CreateWorkflow(ctx, w) })
	d := wantSystemEvent(t, "CreateWorkflow", e, "acme", herald.SubjectWorkflow, herald.VerbCreated, "notify", admin)
	wantMember(t, "CreateWorkflow", d, "/after/name", "notify")
	wantMember(t, "CreateWorkflow", d, "/after/state", herald.WorkflowActive)
	wantMember(t, "CreateWorkflow", d, "/after/description", w.Description)
	if _, ok := d["before"]; ok {
		t.Errorf("CreateWorkflow: workflow created has data.before: %s", e.Data)
	}
	if len(w.Secret) < 20 || w.Secret[:len(herald.SecretPrefix)] != herald.SecretPrefix {
		t.Errorf("CreateWorkflow without a secret: w.Secret = %q, want a whsec_ secret made for it", w.Secret)
	}
	got := findFlow(t, s, "acme", "notify")
	wantDefinition(t, "notify as created", got, fullWorkflow("acme", "notify"))
	if got.Cursor != last || w.Cursor != last {
		t.Errorf("notify created: cursor %d (returned %d); want the account's last seq at creation, %d, before its own event (%d)",
			got.Cursor, w.Cursor, last, e.Seq)
	}
	if got.AccountID != "acme" || got.State != herald.WorkflowActive || got.Secret != w.Secret ||
		!got.CreatedAt.Equal(w.CreatedAt) || !got.UpdatedAt.Equal(got.CreatedAt) || got.CreatedAt.IsZero() {
		t.Errorf("notify as created: account %q, state %q, secret %q…, created %s, updated %s; want acme, active, the secret made, the times returned",
			got.AccountID, got.State, got.Secret[:min(len(got.Secret), 12)], got.CreatedAt, got.UpdatedAt)
	}
	created := got.CreatedAt
	secrets := []string{w.Secret}

	// A secret and a state given are kept.
	audit := simpleWorkflow("acme", "audit")
	audit.Secret = herald.NewSigningSecret()
	audit.State = herald.WorkflowPaused
	createFlow(t, s, ctx, audit)
	secrets = append(secrets, audit.Secret)
	if got := findFlow(t, s, "acme", "audit"); got.Secret != audit.Secret || got.State != herald.WorkflowPaused {
		t.Errorf("audit created with a secret, paused: secret kept %t, state %q; want kept, paused", got.Secret == audit.Secret, got.State)
	}
	if got := flowNames(findFlows(t, s, "acme")); !slices.Equal(got, []string{"audit", "notify"}) {
		t.Errorf("FindWorkflows(acme) = %v, want [audit notify], by name", got)
	}
	if got := findFlows(t, s, "globex"); len(got) != 0 {
		t.Errorf("FindWorkflows(globex) = %v, want none", flowNames(got))
	}

	// Refused: a name taken, an unknown account or state, and changes to
	// workflows that do not exist (in this account). None writes an
	// event.
	subRefused(t, s, "acme", "CreateWorkflow(taken name)", herald.ECONFLICT, func() error {
		return s.CreateWorkflow(ctx, simpleWorkflow("acme", "notify"))
	})
	if got := findFlow(t, s, "acme", "notify"); got.Description != w.Description || got.Secret != w.Secret {
		t.Errorf("after a refused create of a taken name, notify has description %q, want %q, and its secret", got.Description, w.Description)
	}
	wantCode(t, "CreateWorkflow(unknown account)", s.CreateWorkflow(ctx, simpleWorkflow("initech", "x")), herald.ENOTFOUND)
	bad := simpleWorkflow("acme", "bad")
	bad.State = "sleeping"
	subRefused(t, s, "acme", "CreateWorkflow(unknown state)", herald.EINVALID, func() error { return s.CreateWorkflow(ctx, bad) })
	_, err := s.FindWorkflow(t.Context(), "acme", "none")
	wantCode(t, "FindWorkflow(unknown)", err, herald.ENOTFOUND)
	_, err = s.FindWorkflow(t.Context(), "globex", "notify")
	wantCode(t, "FindWorkflow(globex, acme's name)", err, herald.ENOTFOUND)
	subRefused(t, s, "acme", "UpdateWorkflow(unknown)", herald.ENOTFOUND, func() error {
		return s.UpdateWorkflow(ctx, simpleWorkflow("acme", "none"))
	})
	subRefused(t, s, "globex", "UpdateWorkflow(globex, acme's name)", herald.ENOTFOUND, func() error {
		return s.UpdateWorkflow(ctx, simpleWorkflow("globex", "notify"))
	})
	subRefused(t, s, "acme", "SetWorkflowState(unknown)", herald.ENOTFOUND, func() error {
		return s.SetWorkflowState(ctx, "acme", "none", herald.WorkflowPaused)
	})
	subRefused(t, s, "acme", "SetWorkflowState(unknown state)", herald.EINVALID, func() error {
		return s.SetWorkflowState(ctx, "acme", "notify", "sleeping")
	})
	subRefused(t, s, "acme", "DeleteWorkflow(unknown)", herald.ENOTFOUND, func() error {
		return s.DeleteWorkflow(ctx, "acme", "none")
	})
	subRefused(t, s, "globex", "DeleteWorkflow(globex, acme's name)", herald.ENOTFOUND, func() error {
		return s.DeleteWorkflow(ctx, "globex", "notify")
	})

	// The engine's state: a lease, a cursor moved on, a run.
	t0 := baseTime.Add(time.Hour)
	leaseFlows(t, s, workflowOwner, t0, time.Hour, 10)
	enqueue(t, s, "acme", "notify", last+5, newRun("run_1", "p2", last, t0))

	// An update replaces the definition and keeps the rest, whatever the
	// caller left in the other fields.
	changed := simpleWorkflow("acme", "notify")
	changed.Description = "Tell the risk team"
	changed.MaxDepth = 2
	changed.State, changed.Cursor, changed.Secret = herald.WorkflowPaused, 1, herald.NewSigningSecret()
	changed.CreatedAt = baseTime.Add(-time.Hour)
	secrets = append(secrets, changed.Secret)
	e = subChange(t, s, "acme", "UpdateWorkflow", func() error { return s.UpdateWorkflow(ctx, changed) })
	d = wantSystemEvent(t, "UpdateWorkflow", e, "acme", herald.SubjectWorkflow, herald.VerbUpdated, "notify", admin)
	wantMember(t, "UpdateWorkflow", d, "/before/description", w.Description)
	wantMember(t, "UpdateWorkflow", d, "/after/description", changed.Description)
	for _, unchanged := range []string{"/before/name", "/after/state", "/after/cursor"} {
		if v, ok := member(d, unchanged); ok {
			t.Errorf("UpdateWorkflow: data%s = %v, but it did not change", unchanged, v)
		}
	}
	got = findFlow(t, s, "acme", "notify")
	wantDefinition(t, "notify after the update", got, simpleWorkflowWith("acme", "notify", func(w *herald.Workflow) {
		w.Description, w.MaxDepth = "Tell the risk team", 2
	}))
	if got.State != herald.WorkflowActive || got.Cursor != last+5 || got.Secret != w.Secret || !got.CreatedAt.Equal(created) ||
		!got.UpdatedAt.After(created) || !changed.UpdatedAt.Equal(got.UpdatedAt) || changed.Secret != w.Secret {
		t.Errorf("notify after the update: state %q, cursor %d, secret kept %t (returned %t), created %s, updated %s (returned %s);\n"+
			"want them kept: active, cursor %d, its secret, created %s, and a later update time",
			got.State, got.Cursor, got.Secret == w.Secret, changed.Secret == w.Secret, got.CreatedAt, got.UpdatedAt, changed.UpdatedAt,
			last+5, created)
	}
	// The lease is kept: its holder still enqueues, nobody else gets it.
	if held := leaseFlows(t, s, "other", t0.Add(time.Minute), time.Hour, 10); len(held) != 0 {
		t.Errorf("after the update, other took %v, which %s holds", flowKeys(held), workflowOwner)
	}
	enqueue(t, s, "acme", "notify", last+6)

	// Pause and resume are updates of the state, by the key that asked;
	// asking again for the state it is in writes nothing.
	e = subChange(t, s, "acme", "SetWorkflowState(paused)", func() error {
		return s.SetWorkflowState(ctx, "acme", "notify", herald.WorkflowPaused)
	})
	d = wantSystemEvent(t, "pause", e, "acme", herald.SubjectWorkflow, herald.VerbUpdated, "notify", admin)
	wantMember(t, "pause", d, "/before/state", herald.WorkflowActive)
	wantMember(t, "pause", d, "/after/state", herald.WorkflowPaused)
	before := lastSeq(t, s, "acme")
	if err := s.SetWorkflowState(ctx, "acme", "notify", herald.WorkflowPaused); err != nil {
		t.Fatalf("SetWorkflowState(paused) again: %v", err)
	}
	if got := newEvents(t, s, "acme", before); len(got) != 0 {
		t.Errorf("SetWorkflowState(paused) of a paused workflow wrote %s; want nothing", fmtSystemEvents(got))
	}
	// Paused, it is still its holder's: the cursor moves on.
	if held := flowKeys(leaseFlows(t, s, workflowOwner, t0.Add(2*time.Minute), time.Hour, 10)); !slices.Equal(held, []string{"acme/audit", "acme/notify"}) {
		t.Errorf("%s with notify paused holds %v, want [acme/audit acme/notify]: paused workflows read their triggers", workflowOwner, held)
	}
	e = subChange(t, s, "acme", "SetWorkflowState(active)", func() error {
		return s.SetWorkflowState(ctx, "acme", "notify", herald.WorkflowActive)
	})
	d = wantSystemEvent(t, "resume", e, "acme", herald.SubjectWorkflow, herald.VerbUpdated, "notify", admin)
	wantMember(t, "resume", d, "/after/state", herald.WorkflowActive)

	// Deleted: the event carries what it was, and its runs go with it.
	e = subChange(t, s, "acme", "DeleteWorkflow", func() error { return s.DeleteWorkflow(ctx, "acme", "notify") })
	d = wantSystemEvent(t, "DeleteWorkflow", e, "acme", herald.SubjectWorkflow, herald.VerbDeleted, "notify", admin)
	wantMember(t, "DeleteWorkflow", d, "/before/name", "notify")
	wantMember(t, "DeleteWorkflow", d, "/before/description", changed.Description)
	if _, ok := d["after"]; ok {
		t.Errorf("DeleteWorkflow: workflow deleted has data.after: %s", e.Data)
	}
	_, err = s.FindWorkflow(t.Context(), "acme", "notify")
	wantCode(t, "FindWorkflow(deleted)", err, herald.ENOTFOUND)
	_, err = s.FindWorkflowRun(t.Context(), "acme", "run_1")
	wantCode(t, "FindWorkflowRun(run of a deleted workflow)", err, herald.ENOTFOUND)
	wantCode(t, "EnqueueRuns(deleted workflow)", s.EnqueueRuns(t.Context(), "acme", "notify", workflowOwner, last+7, nil, nil), herald.ECONFLICT)
	// Made again, it starts with no history, from the end of the log.
	again := simpleWorkflow("acme", "notify")
	createFlow(t, s, ctx, again)
	secrets = append(secrets, again.Secret)
	if got := findRuns(t, s, "acme", "notify", herald.RunFilter{}); len(got) != 0 {
		t.Errorf("notify made again has the runs of the one deleted: %v", runIDs(got))
	}
	if again.Secret == w.Secret || again.Cursor != lastSeq(t, s, "acme")-1 {
		t.Errorf("notify made again: same secret %t, cursor %d; want a new secret, the last seq before its created event (%d)",
			again.Secret == w.Secret, again.Cursor, lastSeq(t, s, "acme")-1)
	}

	wantNoSecret(t, s, "acme", secrets)
	wantNotInEvents(t, s, "acme", smtpPassword, headerToken)
	wantAuditVerified(t, s, "acme")
	if got := allEvents(t, s, "globex", herald.EventFilter{Category: herald.SubjectWorkflow}); len(got) != 0 {
		t.Errorf("globex holds %s; acme's workflows wrote there", fmtSystemEvents(got))
	}
}

// testWorkflowLeases checks who reads which workflow's triggers: an owner
// gets free ones, active or paused, up to its max, keeps its own, loses
// them when they expire or are given up; and only the holder enqueues
// runs, each trigger once.
func testWorkflowLeases(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	base := quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	paused := simpleWorkflow("acme", "wf_paused")
	paused.State = herald.WorkflowPaused
	for _, w := range []*herald.Workflow{simpleWorkflow("acme", "wf_1"), simpleWorkflow("acme", "wf_2"), paused, simpleWorkflow("globex", "wf_1")} {
		createFlow(t, s, ctx, w)
	}
	all := []string{"acme/wf_1", "acme/wf_2", "acme/wf_paused", "globex/wf_1"}
	t0 := baseTime.Add(time.Hour)
	const ttl = time.Minute
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	heldA := leaseFlows(t, s, "A", t0, ttl, 3)
	if len(heldA) != 3 || !isSubset(flowKeys(heldA), all) {
		t.Fatalf("A (max 3) holds %v; want 3 of %v", flowKeys(heldA), all)
	}
	for _, w := range heldA {
		if w.Secret == "" || len(w.Steps) != 1 || w.MaxDepth != herald.DefaultWorkflowMaxDepth {
			t.Errorf("leased %s/%s: secret set %t, %d steps, max depth %d; want the stored workflow", w.AccountID, w.Name, w.Secret != "", len(w.Steps), w.MaxDepth)
		}
	}
	keysA := flowKeys(heldA)
	free := slices.DeleteFunc(slices.Clone(all), func(k string) bool { return slices.Contains(keysA, k) })
	if got := flowKeys(leaseFlows(t, s, "A", at(10*time.Second), ttl, 3)); !slices.Equal(got, keysA) {
		t.Errorf("A again holds %v, want the same %v", got, keysA)
	}
	if got := flowKeys(leaseFlows(t, s, "B", at(ttl+5*time.Second), ttl, 10)); !slices.Equal(got, free) {
		t.Errorf("B at t0+ttl+5s holds %v, want the one A left, %v", got, free)
	}
	later := at(2*ttl + 10*time.Second)
	if got := flowKeys(leaseFlows(t, s, "B", later, ttl, 10)); !slices.Equal(got, all) {
		t.Errorf("B after A's leases expired holds %v, want all, %v", got, all)
	}
	if got := leaseFlows(t, s, "A", later, ttl, 10); len(got) != 0 {
		t.Errorf("A after B took its expired leases holds %v, want none", flowKeys(got))
	}
	// A lost acme/wf_1: what it enqueues is refused, and nothing stored.
	e1 := page(t, "e1", "", "", baseTime)
	appendOne(t, s, "acme", e1)
	failed := runEvent(t, "acme", "wf_1", "run_x", herald.VerbFailed, baseTime)
	before := lastSeq(t, s, "acme")
	wantCode(t, "EnqueueRuns by A, which lost the lease", s.EnqueueRuns(ctx, "acme", "wf_1", "A", before,
		[]*herald.WorkflowRun{newRun("run_x", "e1", before, t0)}, []*herald.Event{failed}), herald.ECONFLICT)
	if got := findFlow(t, s, "acme", "wf_1"); got.Cursor != base {
		t.Errorf("wf_1 after a refused EnqueueRuns: cursor %d, want %d", got.Cursor, base)
	}
	if got := findRuns(t, s, "acme", "wf_1", herald.RunFilter{}); len(got) != 0 {
		t.Errorf("wf_1 after a refused EnqueueRuns has runs %v", runIDs(got))
	}
	if got := newEvents(t, s, "acme", before); len(got) != 0 {
		t.Errorf("a refused EnqueueRuns wrote %s", fmtSystemEvents(got))
	}

	// B holds it: runs are stored, the cursor moves, the events of runs
	// stored already failed are appended, all at once.
	deep := newRun("run_deep", "e1", before, t0)
	deep.State, deep.Depth, deep.Error = herald.RunFailed, 6, "depth limit: run would be 6 deep"
	finished := t0
	deep.FinishedAt = &finished
	ok := newRun("run_ok", "e0", before-1, t0.Add(time.Second))
	if err := s.EnqueueRuns(ctx, "acme", "wf_1", "B", before, []*herald.WorkflowRun{deep, ok}, []*herald.Event{failed}); err != nil {
		t.Fatalf("EnqueueRuns by B: %v", err)
	}
	written := newEvents(t, s, "acme", before)
	if len(written) != 1 || written[0].ID != failed.ID {
		t.Fatalf("EnqueueRuns with one event wrote %s; want it", fmtSystemEvents(written))
	}
	wantSystemEvent(t, "run failed", written[0], "acme", herald.SubjectWorkflow, herald.VerbFailed, "wf_1",
		herald.Actor{ID: "run_x", Type: herald.AgentTypeWorkflow})
	if got := findFlow(t, s, "acme", "wf_1"); got.Cursor != before {
		t.Errorf("wf_1 after EnqueueRuns: cursor %d, want %d", got.Cursor, before)
	}
	r := findRun(t, s, "acme", "run_deep")
	if r.State != herald.RunFailed || r.Depth != 6 || r.Error != deep.Error || r.FinishedAt == nil || !r.FinishedAt.Equal(t0) ||
		r.Workflow != "wf_1" || r.AccountID != "acme" || r.EventID != "e1" || r.Seq != before || r.Trigger != herald.TriggerFilter {
		t.Errorf("run_deep as stored: %s", fmtRun(r))
	}
	// The same triggers again (a reader that died before its cursor
	// moved): skipped, the first runs kept; a cursor behind stays ahead.
	dup := newRun("run_dup", "e1", before, t0.Add(time.Minute))
	if err := s.EnqueueRuns(ctx, "acme", "wf_1", "B", before-1, []*herald.WorkflowRun{dup}, nil); err != nil {
		t.Fatalf("EnqueueRuns of the same trigger again: %v", err)
	}
	if got := runIDs(findRuns(t, s, "acme", "wf_1", herald.RunFilter{})); !slices.Equal(got, []string{"run_ok", "run_deep"}) {
		t.Errorf("wf_1's runs after the same trigger again = %v, want [run_ok run_deep]: one run per workflow and event", got)
	}
	if got := findFlow(t, s, "acme", "wf_1"); got.Cursor != before {
		t.Errorf("wf_1 after EnqueueRuns with an older cursor: cursor %d, want %d kept", got.Cursor, before)
	}
	// Another workflow may have a run for the same event.
	if err := s.EnqueueRuns(ctx, "acme", "wf_2", "B", before, []*herald.WorkflowRun{newRun("run_2", "e1", before, t0)}, nil); err != nil {
		t.Fatalf("EnqueueRuns(wf_2): %v", err)
	}
	if got := findRun(t, s, "acme", "run_2"); got.Workflow != "wf_2" {
		t.Errorf("run_2 belongs to %q, want wf_2", got.Workflow)
	}

	// Given up, they are free at once.
	if err := s.ReleaseWorkflows(ctx, "B"); err != nil {
		t.Fatalf("ReleaseWorkflows(B): %v", err)
	}
	if got := flowKeys(leaseFlows(t, s, "C", later, ttl, 10)); !slices.Equal(got, all) {
		t.Errorf("C after B released its leases holds %v, want %v", got, all)
	}
	wantCode(t, "EnqueueRuns by B after its release", s.EnqueueRuns(ctx, "acme", "wf_1", "B", before+1, nil, nil), herald.ECONFLICT)
	wantAuditVerified(t, s, "acme")
}

// testClaimRuns checks which runs a runner gets: pending ones due by now
// and running ones whose lease ran out, of active workflows, oldest
// first, each to one owner; that only the holder saves one; and what a
// save stores.
func testClaimRuns(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	paused := simpleWorkflow("acme", "wf_paused")
	paused.State = herald.WorkflowPaused
	for _, w := range []*herald.Workflow{simpleWorkflow("acme", "wf"), paused, simpleWorkflow("globex", "wf")} {
		createFlow(t, s, ctx, w)
	}
	t0 := baseTime.Add(time.Hour)
	leaseFlows(t, s, workflowOwner, t0, 24*time.Hour, 10)
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	r1 := newRun("r1", "e1", 1, at(0)) // due at once
	r2 := newRun("r2", "e2", 2, at(time.Second))
	r2.NextAt = at(time.Hour) // due in an hour
	r3 := newRun("r3", "e3", 3, at(2*time.Second))
	r3.State, r3.FinishedAt, r3.Error = herald.RunFailed, &t0, "depth limit"
	r4 := newRun("r4", "e4", 4, at(3*time.Second)) // of another account
	r5 := newRun("r5", "e5", 5, at(4*time.Second)) // of a paused workflow
	enqueue(t, s, "acme", "wf", 3, r1, r2, r3)
	enqueue(t, s, "globex", "wf", 4, r4)
	enqueue(t, s, "acme", "wf_paused", 5, r5)

	const ttl = time.Minute
	got := claimRuns(t, s, "A", at(time.Minute), ttl, 10)
	if !slices.Equal(runIDs(got), []string{"r1", "r4"}) {
		t.Fatalf("A at t0+1m claims %v; want [r1 r4], the due ones of active workflows, oldest first", runIDs(got))
	}
	if c := got[0]; c.State != herald.RunRunning || c.AccountID != "acme" || c.Workflow != "wf" || c.EventID != "e1" || c.Depth != 1 {
		t.Errorf("r1 as claimed: %s; want running, with what was stored", fmtRun(c))
	}
	if got := claimRuns(t, s, "B", at(time.Minute), ttl, 10); len(got) != 0 {
		t.Errorf("B at t0+1m claims %v; want none: A holds the due ones", runIDs(got))
	}
	// Up to max, oldest first.
	if got := claimRuns(t, s, "B", at(time.Hour+time.Second), ttl, 1); !slices.Equal(runIDs(got), []string{"r1"}) {
		t.Errorf("B (max 1) after A's leases ran out claims %v; want [r1], the oldest", runIDs(got))
	}
	// A's lease on r1 ran out and B took it: A's save is refused.
	r1.State, r1.Step = herald.RunCompleted, 1
	wantCode(t, "SaveRun by A, which lost r1", s.SaveRun(ctx, r1, "A", at(2*time.Hour), nil), herald.ECONFLICT)
	if got := findRun(t, s, "acme", "r1"); got.State != herald.RunRunning || got.Step != 0 {
		t.Errorf("r1 after a refused save: %s; want unchanged, running at step 0", fmtRun(got))
	}
	got = claimRuns(t, s, "B", at(time.Hour+time.Second), ttl, 10)
	if !slices.Equal(runIDs(got), []string{"r2", "r4"}) {
		t.Errorf("B at t0+1h claims %v; want [r2 r4]: r2 due, r4 A's, run out", runIDs(got))
	}

	// B saves r1 at its first step, with its started event: the lease is
	// extended, and the event stored.
	startedAt := at(time.Hour + 2*time.Second)
	r1 = findRun(t, s, "acme", "r1")
	r1.Steps = []*herald.StepRun{{Name: "hook", Kind: herald.TargetWebhook, State: herald.StepSucceeded, Attempts: 1,
		Output: json.RawMessage(`{"status":200}`), StartedAt: &startedAt, FinishedAt: &startedAt}}
	r1.Step, r1.UpdatedAt = 1, startedAt
	started := runEvent(t, "acme", "wf", "r1", herald.VerbStarted, startedAt)
	before := lastSeq(t, s, "acme")
	saveRun(t, s, r1, "B", at(3*time.Hour), started)
	if written := newEvents(t, s, "acme", before); len(written) != 1 || written[0].ID != started.ID {
		t.Errorf("SaveRun with a started event wrote %s; want it", fmtSystemEvents(written))
	}
	stored := findRun(t, s, "acme", "r1")
	if stored.State != herald.RunRunning || stored.Step != 1 || len(stored.Steps) != 1 || stored.Steps[0].State != herald.StepSucceeded ||
		string(stored.Steps[0].Output) != `{"status":200}` || !stored.Steps[0].StartedAt.Equal(startedAt) || !stored.UpdatedAt.Equal(startedAt) {
		t.Errorf("r1 as saved: %s", fmtRun(stored))
	}
	// r2 and r4 are B's until t0+1h1m1s: then C takes them over, and
	// finishes them.
	got = claimRuns(t, s, "C", at(2*time.Hour), ttl, 10)
	if !slices.Equal(runIDs(got), []string{"r2", "r4"}) {
		t.Errorf("C at t0+2h claims %v; want [r2 r4], whose leases ran out, and not r1, which B extended to t0+3h", runIDs(got))
	}
	for _, r := range got {
		r.State, r.FinishedAt = herald.RunCompleted, &t0
		saveRun(t, s, r, "C", at(3*time.Hour))
	}

	// Waiting for a retry, it is free: any runner claims it when due.
	// The lease B asks for is not kept.
	r1.NextAt, r1.UpdatedAt = at(2*time.Hour+30*time.Minute), at(time.Hour+3*time.Second)
	r1.State = herald.RunPending
	r1.Steps[0].Attempts = 2
	saveRun(t, s, r1, "B", at(5*time.Hour))
	if got := claimRuns(t, s, "C", at(2*time.Hour+10*time.Minute), ttl, 10); len(got) != 0 {
		t.Errorf("C at t0+2h10m claims %v; want none: r1 is pending until t0+2h30m, the others finished or paused", runIDs(got))
	}
	if got := claimRuns(t, s, "D", at(2*time.Hour+30*time.Minute), ttl, 10); !slices.Equal(runIDs(got), []string{"r1"}) {
		t.Errorf("D at t0+2h30m claims %v; want [r1], due, its lease freed when it was saved pending", runIDs(got))
	}
	if got := findRun(t, s, "acme", "r1"); !got.NextAt.Equal(at(2*time.Hour+30*time.Minute)) || got.Steps[0].Attempts != 2 {
		t.Errorf("r1 saved pending: %s; want next at t0+2h30m, 2 attempts", fmtRun(got))
	}
	// Finished, it is never claimed again.
	done := at(4*time.Hour + time.Second)
	r1.State, r1.FinishedAt, r1.Error = herald.RunFailed, &done, "hook: 500 after 2 attempts"
	failed := runEvent(t, "acme", "wf", "r1", herald.VerbFailed, done)
	saveRun(t, s, r1, "D", at(5*time.Hour), failed)
	if got := findRun(t, s, "acme", "r1"); got.State != herald.RunFailed || got.FinishedAt == nil || !got.FinishedAt.Equal(done) || got.Error != r1.Error {
		t.Errorf("r1 after its failure: %s", fmtRun(got))
	}
	if got := claimRuns(t, s, "E", at(48*time.Hour), ttl, 10); len(got) != 0 {
		t.Errorf("E at t0+48h claims %v; want none: r1 to r4 are finished, and r5's workflow is paused", runIDs(got))
	}
	wantCode(t, "SaveRun by D of a run it finished", s.SaveRun(ctx, r1, "D", at(49*time.Hour), nil), herald.ECONFLICT)

	// A paused workflow's runs wait for it to resume.
	if err := s.SetWorkflowState(ctx, "acme", "wf_paused", herald.WorkflowActive); err != nil {
		t.Fatalf("SetWorkflowState(wf_paused, active): %v", err)
	}
	if got := claimRuns(t, s, "F", at(50*time.Hour), ttl, 10); !slices.Equal(runIDs(got), []string{"r5"}) {
		t.Errorf("F after wf_paused resumed claims %v; want [r5]", runIDs(got))
	}
	// A released run is free at once, though running.
	if err := s.ReleaseWorkflows(ctx, "F"); err != nil {
		t.Fatalf("ReleaseWorkflows(F): %v", err)
	}
	if got := claimRuns(t, s, "G", at(50*time.Hour), ttl, 10); !slices.Equal(runIDs(got), []string{"r5"}) {
		t.Errorf("G after F released its runs claims %v; want [r5], running but released", runIDs(got))
	}
	_, err := s.FindWorkflowRun(ctx, "globex", "r1")
	wantCode(t, "FindWorkflowRun(globex, acme's run)", err, herald.ENOTFOUND)
	wantCode(t, "SaveRun of acme's run as globex's", s.SaveRun(ctx, &herald.WorkflowRun{AccountID: "globex", ID: "r5", State: herald.RunCompleted},
		"G", at(51*time.Hour), nil), herald.ECONFLICT)
	wantAuditVerified(t, s, "acme")
}

// testFindWorkflowRuns checks the listing of a workflow's runs: newest
// first, by state and event, paged.
func testFindWorkflowRuns(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	createFlow(t, s, ctx, simpleWorkflow("acme", "wf"))
	createFlow(t, s, ctx, simpleWorkflow("acme", "other"))
	t0 := baseTime.Add(time.Hour)
	leaseFlows(t, s, workflowOwner, t0, time.Hour, 10)
	var runs []*herald.WorkflowRun
	for i := range 7 {
		r := newRun(fmt.Sprintf("r%d", i), fmt.Sprintf("e%d", i), int64(i+1), t0.Add(time.Duration(i)*time.Second))
		if i%3 == 0 {
			r.State, r.FinishedAt = herald.RunCompleted, &t0
		}
		runs = append(runs, r)
	}
	// Two created at the same time: the id breaks the tie.
	runs[6].CreatedAt = runs[5].CreatedAt
	enqueue(t, s, "acme", "wf", 7, runs...)
	enqueue(t, s, "acme", "other", 7, newRun("o1", "e1", 2, t0))

	for _, tc := range []struct {
		name string
		f    herald.RunFilter
		want []string
	}{
		{"all", herald.RunFilter{}, []string{"r6", "r5", "r4", "r3", "r2", "r1", "r0"}},
		{"limit", herald.RunFilter{Limit: 3}, []string{"r6", "r5", "r4"}},
		{"page", herald.RunFilter{BeforeID: "r4", Limit: 3}, []string{"r3", "r2", "r1"}},
		{"page at a tie", herald.RunFilter{BeforeID: "r6", Limit: 1}, []string{"r5"}},
		{"last page", herald.RunFilter{BeforeID: "r1", Limit: 3}, []string{"r0"}},
		{"state", herald.RunFilter{State: herald.RunCompleted}, []string{"r6", "r3", "r0"}},
		{"state paged", herald.RunFilter{State: herald.RunPending, BeforeID: "r4"}, []string{"r2", "r1"}},
		{"event", herald.RunFilter{EventID: "e2"}, []string{"r2"}},
		{"unknown before", herald.RunFilter{BeforeID: "nope"}, nil},
	} {
		if got := runIDs(findRuns(t, s, "acme", "wf", tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("FindWorkflowRuns(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := findRuns(t, s, "acme", "none", herald.RunFilter{}); len(got) != 0 {
		t.Errorf("FindWorkflowRuns(unknown workflow) = %v, want none", runIDs(got))
	}
	if got := findRuns(t, s, "globex", "wf", herald.RunFilter{}); len(got) != 0 {
		t.Errorf("FindWorkflowRuns(globex) = %v, want none", runIDs(got))
	}
}

// testWorkflowsFromTwoNodes has runners on two nodes claim runs, and
// readers lease workflows, at once, with leases that do not expire while
// they run: each run and each workflow goes to one owner only.
func testWorkflowsFromTwoNodes(t *testing.T, newDB NewDatabase) {
	open := newDB(t)
	nodes := []Store{open(), open()}
	const (
		numFlows      = 12
		runsPerFlow   = 4
		ownersPerNode = 3
		callsEach     = 6
	)
	quietAccount(t, nodes[0], "acme")
	quietAccount(t, nodes[0], "globex")
	t0 := baseTime.Add(time.Hour)
	var allRuns []string
	for i := range numFlows {
		account, name := []string{"acme", "globex"}[i%2], fmt.Sprintf("wf_%02d", i)
		createFlow(t, nodes[0], t.Context(), simpleWorkflow(account, name))
		leaseFlows(t, nodes[0], "setup", t0, time.Minute, 100)
		var runs []*herald.WorkflowRun
		for j := range runsPerFlow {
			id := fmt.Sprintf("run_%02d_%d", i, j)
			runs = append(runs, newRun(id, fmt.Sprintf("e%d", j), int64(j+1), t0))
			allRuns = append(allRuns, id)
		}
		enqueue(t, nodes[0], account, name, runsPerFlow, runs...)
	}
	if err := nodes[0].ReleaseWorkflows(t.Context(), "setup"); err != nil {
		t.Fatalf("ReleaseWorkflows(setup): %v", err)
	}
	slices.Sort(allRuns)

	var mu sync.Mutex
	runHolders := map[string][]string{}  // run → owners that claimed it
	flowHolders := map[string][]string{} // workflow → owners told they hold it
	var funcs []func(context.Context) error
	for n, node := range nodes {
		for o := range ownersPerNode {
			owner := fmt.Sprintf("node%d-owner%d", n, o)
			funcs = append(funcs, func(ctx context.Context) error {
				for i := range callsEach {
					now := t0.Add(time.Minute + time.Duration(i)*time.Second)
					runs, err := node.ClaimRuns(ctx, owner, now, time.Hour, 3)
					if err != nil {
						return fmt.Errorf("%s: ClaimRuns %d: %w", owner, i, err)
					}
					flows, err := node.LeaseWorkflows(ctx, owner, now, time.Hour, 2)
					if err != nil {
						return fmt.Errorf("%s: LeaseWorkflows %d: %w", owner, i, err)
					}
					mu.Lock()
					for _, r := range runs {
						runHolders[r.ID] = append(runHolders[r.ID], owner)
					}
					for _, k := range flowKeys(flows) {
						if !slices.Contains(flowHolders[k], owner) {
							flowHolders[k] = append(flowHolders[k], owner)
						}
					}
					mu.Unlock()
				}
				return nil
			})
		}
	}
	runConcurrently(t, funcs)

	for _, id := range slices.Sorted(maps.Keys(runHolders)) {
		if len(runHolders[id]) > 1 {
			t.Errorf("run %s was claimed %d times, by %v", id, len(runHolders[id]), runHolders[id])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(flowHolders)) {
		if len(flowHolders[k]) > 1 {
			t.Errorf("workflow %s was held by %v at once", k, flowHolders[k])
		}
	}
	// What a call skipped, locked by another at that moment, is left for
	// a last one: together they claimed every run once.
	for _, r := range claimRuns(t, nodes[0], "last", t0.Add(time.Hour), time.Hour, 1000) {
		if len(runHolders[r.ID]) > 0 {
			t.Errorf("run %s claimed by last, though %v holds it", r.ID, runHolders[r.ID])
		}
		runHolders[r.ID] = append(runHolders[r.ID], "last")
	}
	if got := slices.Sorted(maps.Keys(runHolders)); !slices.Equal(got, allRuns) {
		t.Errorf("claimed runs %v; want each of %v", got, allRuns)
	}
}

// fullWorkflow is a valid workflow of the account with a step of each
// sort that holds a secret: an email through a server with a password,
// a webhook with a credential in a header.
func fullWorkflow(accountID, name string) *herald.Workflow {
	w := &herald.Workflow{
		AccountID: accountID, Name: name, Description: "Tell risk about failed payouts",
		Filter: &herald.Filter{Categories: []string{"payout"}, Types: []string{"fail*"}},
		Steps: []*herald.WorkflowStep{
			{Name: "mail", Target: herald.Target{Kind: herald.TargetEmail,
				SMTP: &herald.SMTPConfig{Host: "smtp.example.com", Username: "herald", Password: smtpPassword},
				From: "alerts@example.com", To: []string{"risk@example.com"}, Subject: "Payout failed"}},
			{Name: "hook", Target: herald.Target{Kind: herald.TargetWebhook, URL: "https://hooks.example.com/risk",
				Headers: map[string]string{"Authorization": headerToken}, JSONTemplate: `{ id: event.id }`}},
			{Name: "flag", Target: herald.Target{Kind: herald.StepSetAttributes}, Attributes: map[string]any{"risk": "high"}},
			{Name: "emit", Target: herald.Target{Kind: herald.StepEmitEvent}, Event: json.RawMessage(`{"category":"risk","type":"flagged"}`)},
		},
		MaxDepth: 3,
	}
	w.SetDefaults()
	return w
}

// simpleWorkflow is a valid workflow of the account with one webhook
// step and the defaults.
func simpleWorkflow(accountID, name string) *herald.Workflow {
	return simpleWorkflowWith(accountID, name, func(*herald.Workflow) {})
}

// simpleWorkflowWith is simpleWorkflow that modify changed before the
// defaults were set.
func simpleWorkflowWith(accountID, name string, modify func(w *herald.Workflow)) *herald.Workflow {
	w := &herald.Workflow{
		AccountID: accountID, Name: name,
		Steps: []*herald.WorkflowStep{{Name: "hook", Target: herald.Target{Kind: herald.TargetWebhook, URL: "https://hooks.example.com/" + name}}},
	}
	modify(w)
	w.SetDefaults()
	return w
}

// createFlow stores w, which must be valid, failing the test if it
// cannot.
func createFlow(t *testing.T, s Store, ctx context.Context, w *herald.Workflow) {
	t.Helper()
	if err := w.Validate(); err != nil {
		t.Fatalf("the case's workflow %s is not valid: %v", w.Name, err)
	}
	if err := s.CreateWorkflow(ctx, w); err != nil {
		t.Fatalf("CreateWorkflow(%s, %s): %v", w.AccountID, w.Name, err)
	}
}

func findFlow(t *testing.T, s Store, accountID, name string) *herald.Workflow {
	t.Helper()
	got, err := s.FindWorkflow(t.Context(), accountID, name)
	return must(t, got, err, "FindWorkflow(%s, %s)", accountID, name)
}

func findFlows(t *testing.T, s Store, accountID string) []*herald.Workflow {
	t.Helper()
	got, err := s.FindWorkflows(t.Context(), accountID)
	return must(t, got, err, "FindWorkflows(%s)", accountID)
}

func findRun(t *testing.T, s Store, accountID, id string) *herald.WorkflowRun {
	t.Helper()
	got, err := s.FindWorkflowRun(t.Context(), accountID, id)
	return must(t, got, err, "FindWorkflowRun(%s, %s)", accountID, id)
}

func findRuns(t *testing.T, s Store, accountID, name string, f herald.RunFilter) []*herald.WorkflowRun {
	t.Helper()
	got, err := s.FindWorkflowRuns(t.Context(), accountID, name, f)
	return must(t, got, err, "FindWorkflowRuns(%s, %s, %+v)", accountID, name, f)
}

func leaseFlows(t *testing.T, s Store, owner string, now time.Time, ttl time.Duration, max int) []*herald.Workflow {
	t.Helper()
	got, err := s.LeaseWorkflows(t.Context(), owner, now, ttl, max)
	return must(t, got, err, "LeaseWorkflows(%s)", owner)
}

func claimRuns(t *testing.T, s Store, owner string, now time.Time, ttl time.Duration, max int) []*herald.WorkflowRun {
	t.Helper()
	got, err := s.ClaimRuns(t.Context(), owner, now, ttl, max)
	return must(t, got, err, "ClaimRuns(%s, %s)", owner, now.Format(time.RFC3339))
}

// enqueue stores runs of the account's workflow name as workflowOwner
// or setup, whichever holds its lease, moving its cursor to cursor.
func enqueue(t *testing.T, s Store, accountID, name string, cursor int64, runs ...*herald.WorkflowRun) {
	t.Helper()
	for _, owner := range []string{workflowOwner, "setup"} {
		err := s.EnqueueRuns(t.Context(), accountID, name, owner, cursor, runs, nil)
		if err == nil {
			return
		}
		if herald.ErrorCode(err) != herald.ECONFLICT {
			t.Fatalf("EnqueueRuns(%s, %s): %v", accountID, name, err)
		}
	}
	t.Fatalf("EnqueueRuns(%s, %s): neither %s nor setup holds its lease", accountID, name, workflowOwner)
}

func saveRun(t *testing.T, s Store, r *herald.WorkflowRun, owner string, leaseUntil time.Time, events ...*herald.Event) {
	t.Helper()
	if err := s.SaveRun(t.Context(), r, owner, leaseUntil, events); err != nil {
		t.Fatalf("SaveRun(%s by %s): %v", r.ID, owner, err)
	}
}

// newRun is a pending run, due at once, of the event, made at created.
func newRun(id, eventID string, seq int64, created time.Time) *herald.WorkflowRun {
	return &herald.WorkflowRun{ID: id, EventID: eventID, Seq: seq, Trigger: herald.TriggerFilter, Depth: 1,
		State: herald.RunPending, Steps: []*herald.StepRun{}, CreatedAt: created, UpdatedAt: created}
}

// runEvent is a system event about the workflow by its run, as the engine
// writes them.
func runEvent(t *testing.T, accountID, workflow, runID, verb string, at time.Time) *herald.Event {
	t.Helper()
	e, err := herald.SystemEvent{
		AccountID: accountID, SubjectType: herald.SubjectWorkflow, SubjectID: workflow, Verb: verb,
		By: herald.Actor{ID: runID, Type: herald.AgentTypeWorkflow}, At: at, Notes: "run " + runID,
		Fields: map[string]any{"runId": runID},
	}.Event()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func flowNames(list []*herald.Workflow) []string {
	return idsOf(list, func(w *herald.Workflow) string { return w.Name })
}

// flowKeys returns "account/name" of each workflow, sorted.
func flowKeys(list []*herald.Workflow) []string {
	out := idsOf(list, func(w *herald.Workflow) string { return w.AccountID + "/" + w.Name })
	slices.Sort(out)
	return out
}

func runIDs(list []*herald.WorkflowRun) []string {
	return idsOf(list, func(r *herald.WorkflowRun) string { return r.ID })
}

func fmtRun(r *herald.WorkflowRun) string {
	b, _ := json.Marshal(r)
	return fmt.Sprintf("%s/%s %s", r.AccountID, r.ID, b)
}

// wantDefinition checks that got has the definition of want: what a
// client chose of a workflow or a job.
func wantDefinition(t *testing.T, what string, got, want interface{ Definition() ([]byte, error) }) {
	t.Helper()
	g, err := got.Definition()
	if err != nil {
		t.Fatal(err)
	}
	w, err := want.Definition()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s: definition\n%s\nwant\n%s", what, g, w)
	}
}

// wantNotInEvents checks that no event of the account holds any of
// values.
func wantNotInEvents(t *testing.T, s Store, accountID string, values ...string) {
	t.Helper()
	for _, e := range allEvents(t, s, accountID, herald.EventFilter{}) {
		for _, v := range values {
			if bytes.Contains(e.Body, []byte(v)) {
				t.Errorf("event %d (%s/%s) holds the secret %q: %s", e.Seq, e.Category, e.Type, v, e.Body)
			}
		}
	}
}
