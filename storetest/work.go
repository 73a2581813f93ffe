package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// testWork checks that a job is stored as given, that it starts where
// its kind and mode say, that an update replaces its definition and
// nothing else, that pausing, resuming and asking for a cycle do what
// they say, and that each change writes its system event in the same
// commit, with no secret in it.
func testWork(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	admin := herald.Actor{ID: "key_admin", Type: herald.AgentTypeAPIKey}
	ctx := herald.NewContextWithActor(t.Context(), admin)
	base := quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	appendOne(t, s, "acme", page(t, "p1", "", "", baseTime), page(t, "p2", "", "", baseTime))
	last := base + 2

	// A stream export starts at the end of the log as it was before the
	// commit, its own "created" event first; it gets a secret.
	stream := exportJob("acme", "job_stream", herald.ExportStream, baseTime)
	e := subChange(t, s, "acme", "CreateWork", func() error { return s.CreateWork(ctx, stream) })
	d := wantSystemEvent(t, "CreateWork", e, "acme", herald.SubjectWork, herald.VerbCreated, "job_stream", admin)
	wantMember(t, "CreateWork", d, "/after/id", "job_stream")
	wantMember(t, "CreateWork", d, "/after/kind", herald.WorkExport)
	wantMember(t, "CreateWork", d, "/after/state", herald.WorkActive)
	wantMember(t, "CreateWork", d, "/after/export/mode", herald.ExportStream)
	got := findJob(t, s, "acme", "job_stream")
	wantDefinition(t, "job_stream as created", got, exportJob("acme", "job_stream", herald.ExportStream, baseTime))
	if got.Runtime.Cursor != last || stream.Runtime.Cursor != last {
		t.Errorf("job_stream (start now) created: cursor %d (returned %d), want the account's last seq at creation, %d",
			got.Runtime.Cursor, stream.Runtime.Cursor, last)
	}
	if got.AccountID != "acme" || got.Kind != herald.WorkExport || got.State != herald.WorkActive || got.StateReason != "" ||
		got.Secret == "" || got.Secret != stream.Secret || !got.CreatedAt.Equal(baseTime) || !got.UpdatedAt.Equal(baseTime) || got.RunNowAt != nil {
		t.Errorf("job_stream as created: account %q, kind %q, state %q (%q), secret made and returned %t, created %s, updated %s, run now %v;\n"+
			"want acme, export, active, a secret, the creation time given for both, no run now",
			got.AccountID, got.Kind, got.State, got.StateReason, got.Secret != "" && got.Secret == stream.Secret, got.CreatedAt, got.UpdatedAt, got.RunNowAt)
	}
	secrets := []string{stream.Secret}

	// A one-time export and a batch export from the beginning start at 0;
	// an alert at the end of the log; a secret given is kept.
	for _, job := range []*herald.Work{
		exportJob("acme", "job_once", herald.ExportOnce, baseTime.Add(time.Second)),
		exportJob("acme", "job_batch", herald.ExportBatch, baseTime.Add(2*time.Second)),
		alertJob("acme", "job_alert", baseTime.Add(3*time.Second)),
	} {
		want := lastSeq(t, s, "acme")
		if job.Kind == herald.WorkExport {
			want = 0
		}
		given := ""
		if job.Kind == herald.WorkAlert {
			given = herald.NewSigningSecret()
			job.Secret = given
		}
		createJob(t, s, ctx, job)
		secrets = append(secrets, job.Secret)
		if got := findJob(t, s, "acme", job.ID); got.Runtime.Cursor != want || (given != "" && got.Secret != given) {
			t.Errorf("%s created: cursor %d, secret kept %t; want cursor %d and a given secret kept", job.ID, got.Runtime.Cursor, got.Secret == given, want)
		}
	}
	if got := jobIDs(findJobs(t, s, "acme", "")); !slices.Equal(got, []string{"job_stream", "job_once", "job_batch", "job_alert"}) {
		t.Errorf("FindWorks(acme) = %v, want [job_stream job_once job_batch job_alert], oldest first", got)
	}
	if got := jobIDs(findJobs(t, s, "acme", herald.WorkAlert)); !slices.Equal(got, []string{"job_alert"}) {
		t.Errorf("FindWorks(acme, alert) = %v, want [job_alert]", got)
	}
	if got := jobIDs(findJobs(t, s, "acme", herald.WorkExport)); !slices.Equal(got, []string{"job_stream", "job_once", "job_batch"}) {
		t.Errorf("FindWorks(acme, export) = %v, want the three exports", got)
	}
	if got := findJobs(t, s, "globex", ""); len(got) != 0 {
		t.Errorf("FindWorks(globex) = %v, want none", jobIDs(got))
	}

	// Refused: an id taken or missing, an unknown account or state, and
	// changes to jobs that do not exist (in this account). None writes an
	// event.
	subRefused(t, s, "acme", "CreateWork(taken id)", herald.ECONFLICT, func() error {
		return s.CreateWork(ctx, exportJob("acme", "job_stream", herald.ExportOnce, baseTime))
	})
	if got := findJob(t, s, "acme", "job_stream"); got.Export.Mode != herald.ExportStream || got.Secret != stream.Secret {
		t.Errorf("after a refused create of a taken id, job_stream is a %q export, secret kept %t; want stream, kept", got.Export.Mode, got.Secret == stream.Secret)
	}
	subRefused(t, s, "acme", "CreateWork(no id)", herald.EINVALID, func() error {
		return s.CreateWork(ctx, exportJob("acme", "", herald.ExportOnce, baseTime))
	})
	bad := exportJob("acme", "job_bad", herald.ExportOnce, baseTime)
	bad.State = "sleeping"
	subRefused(t, s, "acme", "CreateWork(unknown state)", herald.EINVALID, func() error { return s.CreateWork(ctx, bad) })
	wantCode(t, "CreateWork(unknown account)", s.CreateWork(ctx, exportJob("initech", "job_x", herald.ExportOnce, baseTime)), herald.ENOTFOUND)
	for _, acct := range []string{"acme", "globex"} {
		id := "job_stream"
		if acct == "acme" {
			id = "job_none"
		}
		_, err := s.FindWork(ctx, acct, id)
		wantCode(t, fmt.Sprintf("FindWork(%s, %s)", acct, id), err, herald.ENOTFOUND)
		subRefused(t, s, acct, fmt.Sprintf("UpdateWork(%s, %s)", acct, id), herald.ENOTFOUND, func() error {
			return s.UpdateWork(ctx, exportJob(acct, id, herald.ExportOnce, baseTime))
		})
		subRefused(t, s, acct, fmt.Sprintf("SetWorkState(%s, %s)", acct, id), herald.ENOTFOUND, func() error {
			return s.SetWorkState(ctx, acct, id, herald.WorkPaused, "")
		})
		subRefused(t, s, acct, fmt.Sprintf("RunWorkNow(%s, %s)", acct, id), herald.ENOTFOUND, func() error {
			return s.RunWorkNow(ctx, acct, id, baseTime)
		})
		subRefused(t, s, acct, fmt.Sprintf("DeleteWork(%s, %s)", acct, id), herald.ENOTFOUND, func() error {
			return s.DeleteWork(ctx, acct, id)
		})
	}
	subRefused(t, s, "acme", "SetWorkState(unknown state)", herald.EINVALID, func() error {
		return s.SetWorkState(ctx, "acme", "job_batch", "sleeping", "")
	})

	// The engine's state: a lease, a cycle under way.
	t0 := baseTime.Add(time.Hour)
	leaseJobs(t, s, "node-1", t0, time.Hour, 10)
	pending := &herald.WorkCycle{Number: 1, AfterSeq: 0, UpTo: last, Done: 1, Units: 1, Events: 1, StartedAt: t0}
	saveProgress(t, s, &herald.WorkProgress{AccountID: "acme", WorkID: "job_batch", Owner: "node-1",
		Runtime: herald.WorkRuntime{Cursor: 1, StartedAt: &t0, Syncing: true, Pending: pending}})

	// An update replaces the definition and keeps the rest, whatever the
	// caller left in the other fields.
	changed := exportJob("acme", "job_batch", herald.ExportBatch, baseTime.Add(-time.Hour))
	changed.Name, changed.Export.Every, changed.Export.BatchSize = "Nightly", herald.Duration(24*time.Hour), 500
	changed.Kind, changed.State, changed.StateReason = herald.WorkAlert, herald.WorkPaused, "sneaky"
	sneaky := herald.NewSigningSecret()
	changed.Runtime, changed.Secret, changed.RunNowAt = herald.WorkRuntime{Cursor: 99}, sneaky, &t0
	secrets = append(secrets, sneaky)
	e = subChange(t, s, "acme", "UpdateWork", func() error { return s.UpdateWork(ctx, changed) })
	d = wantSystemEvent(t, "UpdateWork", e, "acme", herald.SubjectWork, herald.VerbUpdated, "job_batch", admin)
	wantMember(t, "UpdateWork", d, "/before/name", "Export job_batch")
	wantMember(t, "UpdateWork", d, "/after/name", "Nightly")
	for _, unchanged := range []string{"/after/id", "/after/kind", "/after/state", "/after/runtime", "/after/createdAt"} {
		if v, ok := member(d, unchanged); ok {
			t.Errorf("UpdateWork: data%s = %v, but it did not change", unchanged, v)
		}
	}
	got = findJob(t, s, "acme", "job_batch")
	want := exportJob("acme", "job_batch", herald.ExportBatch, baseTime)
	want.Name, want.Export.Every, want.Export.BatchSize = "Nightly", herald.Duration(24*time.Hour), 500
	wantDefinition(t, "job_batch after the update", got, want)
	if got.Kind != herald.WorkExport || got.State != herald.WorkActive || got.StateReason != "" || got.Runtime.Cursor != 1 ||
		!got.Runtime.Syncing || got.Runtime.Pending == nil || got.RunNowAt != nil || !got.CreatedAt.Equal(baseTime.Add(2*time.Second)) ||
		got.Secret == sneaky || changed.Secret != got.Secret || changed.Kind != herald.WorkExport {
		t.Errorf("job_batch after the update: kind %q (returned %q), state %q (%q), runtime %s, run now %v, created %s, secret replaced %t;\n"+
			"want them kept: export, active, cursor 1 syncing with its cycle, no run now, created %s, its secret",
			got.Kind, changed.Kind, got.State, got.StateReason, fmtJSON(got.Runtime), got.RunNowAt, got.CreatedAt, got.Secret == sneaky,
			baseTime.Add(2*time.Second))
	}
	if held := leaseJobs(t, s, "node-2", t0.Add(time.Minute), time.Hour, 10); len(held) != 0 {
		t.Errorf("after the update, node-2 took %v, which node-1 holds", jobKeys(held))
	}

	// Asked for a cycle now: quietly noted.
	before := lastSeq(t, s, "acme")
	now := t0.Add(90 * time.Second).Add(123 * time.Nanosecond)
	if err := s.RunWorkNow(ctx, "acme", "job_batch", now); err != nil {
		t.Fatalf("RunWorkNow: %v", err)
	}
	if got := findJob(t, s, "acme", "job_batch"); got.RunNowAt == nil || !got.RunNowAt.Equal(now.Truncate(time.Microsecond)) {
		t.Errorf("job_batch after RunWorkNow(%s): run now at %v, want it (to the microsecond)", now, got.RunNowAt)
	}
	if got := newEvents(t, s, "acme", before); len(got) != 0 {
		t.Errorf("RunWorkNow wrote %s; want nothing", fmtSystemEvents(got))
	}

	// Paused: an update of the state, by the key that asked; its series
	// of cycles ends and its holder loses it, but its place is kept.
	e = subChange(t, s, "acme", "SetWorkState(paused)", func() error {
		return s.SetWorkState(ctx, "acme", "job_batch", herald.WorkPaused, "maintenance")
	})
	d = wantSystemEvent(t, "pause", e, "acme", herald.SubjectWork, herald.VerbUpdated, "job_batch", admin)
	wantMember(t, "pause", d, "/before/state", herald.WorkActive)
	wantMember(t, "pause", d, "/after/state", herald.WorkPaused)
	wantMember(t, "pause", d, "/after/stateReason", "maintenance")
	got = findJob(t, s, "acme", "job_batch")
	if got.State != herald.WorkPaused || got.StateReason != "maintenance" || got.Runtime.Syncing || got.Runtime.Cursor != 1 || got.Runtime.Pending == nil {
		t.Errorf("job_batch paused: state %q (%q), runtime %s; want paused (maintenance), not syncing, cursor 1 with its cycle",
			got.State, got.StateReason, fmtJSON(got.Runtime))
	}
	wantCode(t, "SaveWorkProgress of a paused job", s.SaveWorkProgress(ctx, &herald.WorkProgress{
		AccountID: "acme", WorkID: "job_batch", Owner: "node-1", Runtime: herald.WorkRuntime{Cursor: 2}}), herald.ECONFLICT)
	if held := jobKeys(leaseJobs(t, s, "node-1", t0.Add(2*time.Minute), time.Hour, 10)); slices.Contains(held, "acme/job_batch") {
		t.Errorf("node-1 holds %v; want no paused job among them", held)
	}
	before = lastSeq(t, s, "acme")
	if err := s.SetWorkState(ctx, "acme", "job_batch", herald.WorkPaused, "maintenance"); err != nil {
		t.Fatalf("SetWorkState(paused) again: %v", err)
	}
	if got := newEvents(t, s, "acme", before); len(got) != 0 {
		t.Errorf("SetWorkState(paused) of a job paused for that reason wrote %s; want nothing", fmtSystemEvents(got))
	}

	// Resumed, it has no reason, and it is free: another node takes it.
	e = subChange(t, s, "acme", "SetWorkState(active)", func() error {
		return s.SetWorkState(ctx, "acme", "job_batch", herald.WorkActive, "ignored")
	})
	d = wantSystemEvent(t, "resume", e, "acme", herald.SubjectWork, herald.VerbUpdated, "job_batch", admin)
	wantMember(t, "resume", d, "/after/state", herald.WorkActive)
	if got := findJob(t, s, "acme", "job_batch"); got.State != herald.WorkActive || got.StateReason != "" {
		t.Errorf("job_batch resumed: state %q (%q), want active with no reason", got.State, got.StateReason)
	}
	if held := jobKeys(leaseJobs(t, s, "node-2", t0.Add(3*time.Minute), time.Hour, 10)); !slices.Equal(held, []string{"acme/job_batch"}) {
		t.Errorf("node-2 after the resume holds %v, want [acme/job_batch]", held)
	}

	// Failed by its engine, then resumed: it tries its cycle again.
	failed := workEvent(t, "acme", "job_batch", herald.VerbFailed, t0.Add(4*time.Minute))
	saveProgress(t, s, &herald.WorkProgress{AccountID: "acme", WorkID: "job_batch", Owner: "node-2",
		Runtime: herald.WorkRuntime{Cursor: 1, StartedAt: &t0, Pending: pending, Failures: 1},
		State:   herald.WorkFailed, StateReason: "destination refused the connection", Events: []*herald.Event{failed}})
	if got := findJob(t, s, "acme", "job_batch"); got.State != herald.WorkFailed || got.StateReason != "destination refused the connection" {
		t.Errorf("job_batch after a failure: state %q (%q), want failed with the reason", got.State, got.StateReason)
	}
	if err := s.SetWorkState(ctx, "acme", "job_batch", herald.WorkActive, ""); err != nil {
		t.Fatalf("SetWorkState(active) after a failure: %v", err)
	}
	if got := findJob(t, s, "acme", "job_batch"); got.State != herald.WorkActive || got.StateReason != "" ||
		got.Runtime.Pending == nil || got.Runtime.Pending.Done != 1 || got.Runtime.Failures != 1 {
		t.Errorf("job_batch resumed after a failure: state %q (%q), runtime %s; want active, its cycle and failures kept",
			got.State, got.StateReason, fmtJSON(got.Runtime))
	}

	// Deleted: the event carries what it was, and its history goes.
	leaseJobs(t, s, "node-2", t0.Add(5*time.Minute), time.Hour, 10)
	saveProgress(t, s, &herald.WorkProgress{AccountID: "acme", WorkID: "job_batch", Owner: "node-2",
		Runtime: herald.WorkRuntime{Cursor: last}, Records: []*herald.WorkRecord{cycleRecord(1, t0)}})
	e = subChange(t, s, "acme", "DeleteWork", func() error { return s.DeleteWork(ctx, "acme", "job_batch") })
	d = wantSystemEvent(t, "DeleteWork", e, "acme", herald.SubjectWork, herald.VerbDeleted, "job_batch", admin)
	wantMember(t, "DeleteWork", d, "/before/id", "job_batch")
	wantMember(t, "DeleteWork", d, "/before/name", "Nightly")
	if _, ok := d["after"]; ok {
		t.Errorf("DeleteWork: job deleted has data.after: %s", e.Data)
	}
	_, err := s.FindWork(ctx, "acme", "job_batch")
	wantCode(t, "FindWork(deleted)", err, herald.ENOTFOUND)
	wantCode(t, "SaveWorkProgress of a deleted job", s.SaveWorkProgress(ctx, &herald.WorkProgress{
		AccountID: "acme", WorkID: "job_batch", Owner: "node-2"}), herald.ECONFLICT)
	again := exportJob("acme", "job_batch", herald.ExportBatch, baseTime)
	createJob(t, s, ctx, again)
	secrets = append(secrets, again.Secret)
	if got := findRecords(t, s, "acme", "job_batch", herald.WorkRecordFilter{}); len(got) != 0 {
		t.Errorf("job_batch made again has the history of the one deleted: %d records", len(got))
	}

	// LastSeq is the account's newest seq.
	for _, acct := range []string{"acme", "globex"} {
		if got, err := s.LastSeq(ctx, acct); err != nil || got != lastSeq(t, s, acct) {
			t.Errorf("LastSeq(%s) = %d, %v; want %d", acct, got, err, lastSeq(t, s, acct))
		}
	}
	_, err = s.LastSeq(ctx, "initech")
	wantCode(t, "LastSeq(unknown account)", err, herald.ENOTFOUND)

	wantNoSecret(t, s, "acme", secrets)
	wantNotInEvents(t, s, "acme", dsnPassword, smtpPassword, headerToken)
	wantAuditVerified(t, s, "acme")
	if got := allEvents(t, s, "globex", herald.EventFilter{Category: herald.SubjectWork}); len(got) != 0 {
		t.Errorf("globex holds %s; acme's jobs wrote there", fmtSystemEvents(got))
	}
}

// testWorkLeases checks who runs which job: an owner gets free active
// ones up to its max, keeps its own, loses them when they expire or are
// given up, and never gets a job that is not active.
func testWorkLeases(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	for i, job := range []*herald.Work{
		exportJob("acme", "job_1", herald.ExportStream, baseTime), alertJob("acme", "job_2", baseTime),
		exportJob("acme", "job_paused", herald.ExportBatch, baseTime), exportJob("acme", "job_done", herald.ExportOnce, baseTime),
		exportJob("acme", "job_failed", herald.ExportBatch, baseTime), alertJob("globex", "job_1", baseTime),
	} {
		job.CreatedAt = baseTime.Add(time.Duration(i) * time.Second)
		createJob(t, s, ctx, job)
	}
	for id, state := range map[string]string{"job_paused": herald.WorkPaused, "job_done": herald.WorkCompleted, "job_failed": herald.WorkFailed} {
		if err := s.SetWorkState(ctx, "acme", id, state, "for the case"); err != nil {
			t.Fatalf("SetWorkState(%s, %s): %v", id, state, err)
		}
	}
	active := []string{"acme/job_1", "acme/job_2", "globex/job_1"}
	t0 := baseTime.Add(time.Hour)
	const ttl = time.Minute
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	heldA := leaseJobs(t, s, "A", t0, ttl, 2)
	if !slices.Equal(jobKeys(heldA), []string{"acme/job_1", "acme/job_2"}) {
		t.Fatalf("A (max 2) holds %v; want the 2 oldest active ones", jobKeys(heldA))
	}
	if j := heldA[0]; j.ID != "job_1" || j.Export == nil || j.Export.Destination.DSN == "" || j.Secret == "" {
		t.Errorf("leased job_1: %s; want the stored job, oldest first, with its DSN and secret", fmtJSON(j))
	}
	if got := jobKeys(leaseJobs(t, s, "A", at(10*time.Second), ttl, 2)); !slices.Equal(got, jobKeys(heldA)) {
		t.Errorf("A again holds %v, want the same", got)
	}
	if got := jobKeys(leaseJobs(t, s, "B", at(ttl+5*time.Second), ttl, 10)); !slices.Equal(got, []string{"globex/job_1"}) {
		t.Errorf("B at t0+ttl+5s holds %v, want the one A left", got)
	}
	later := at(2*ttl + 10*time.Second)
	if got := jobKeys(leaseJobs(t, s, "B", later, ttl, 10)); !slices.Equal(got, active) {
		t.Errorf("B after A's leases expired holds %v, want %v", got, active)
	}
	if got := leaseJobs(t, s, "A", later, ttl, 10); len(got) != 0 {
		t.Errorf("A after B took its expired leases holds %v, want none", jobKeys(got))
	}
	wantCode(t, "SaveWorkProgress by A, which lost job_1", s.SaveWorkProgress(ctx, &herald.WorkProgress{
		AccountID: "acme", WorkID: "job_1", Owner: "A", Runtime: herald.WorkRuntime{Cursor: 5}}), herald.ECONFLICT)
	if err := s.ReleaseWork(ctx, "B"); err != nil {
		t.Fatalf("ReleaseWork(B): %v", err)
	}
	if got := jobKeys(leaseJobs(t, s, "C", later, ttl, 10)); !slices.Equal(got, active) {
		t.Errorf("C after B released its leases holds %v, want %v", got, active)
	}
	if got := leaseJobs(t, s, "B", later, ttl, 10); len(got) != 0 {
		t.Errorf("B after releasing holds %v, want none: C holds them", jobKeys(got))
	}
	// A completed job stays so; a failed one resumed is leased again.
	if err := s.SetWorkState(ctx, "acme", "job_failed", herald.WorkActive, ""); err != nil {
		t.Fatalf("SetWorkState(job_failed, active): %v", err)
	}
	if got := jobKeys(leaseJobs(t, s, "C", later, ttl, 10)); !slices.Equal(got, []string{"acme/job_1", "acme/job_2", "acme/job_failed", "globex/job_1"}) {
		t.Errorf("C after job_failed resumed holds %v, want it too", got)
	}
}

// testSaveWorkProgress checks what one commit of a job's engine stores,
// and that an engine without the lease, or of a job no longer active,
// stores nothing.
func testSaveWorkProgress(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	createJob(t, s, ctx, exportJob("acme", "job_1", herald.ExportBatch, baseTime))
	createJob(t, s, ctx, exportJob("globex", "job_1", herald.ExportBatch, baseTime))
	t0 := baseTime.Add(time.Hour)
	const ttl = time.Minute
	leaseJobs(t, s, "node-1", t0, ttl, 10)

	// A cycle starts: runtime and system events in one commit, in order.
	rt := herald.WorkRuntime{Cursor: 0, StartedAt: &t0, Syncing: true,
		Pending: &herald.WorkCycle{Number: 1, AfterSeq: 0, UpTo: 20, Done: 10, Units: 1, Events: 10, StartedAt: t0}}
	events := []*herald.Event{
		workEvent(t, "acme", "job_1", herald.VerbStarted, t0), workEvent(t, "acme", "job_1", herald.VerbSyncing, t0),
		workEvent(t, "acme", "job_1", herald.VerbSynced, t0),
	}
	before := lastSeq(t, s, "acme")
	saveProgress(t, s, &herald.WorkProgress{AccountID: "acme", WorkID: "job_1", Owner: "node-1", Runtime: rt, Events: events})
	if got := newEvents(t, s, "acme", before); !slices.Equal(ids(got), ids(events)) {
		t.Errorf("SaveWorkProgress with 3 events wrote %s; want them, in order", fmtSystemEvents(got))
	} else {
		wantSystemEvent(t, "started", got[0], "acme", herald.SubjectWork, herald.VerbStarted, "job_1", herald.SystemActor)
	}
	wantRuntime(t, "job_1 after its first unit", findJob(t, s, "acme", "job_1"), rt)

	// The cycle ends: a record, which gets its id.
	rec := cycleRecord(1, t0)
	rt = herald.WorkRuntime{Cursor: 20, StartedAt: &t0, Syncing: true, Cycles: 1, Units: 2, Events: 20, LastCycle: rec}
	saveProgress(t, s, &herald.WorkProgress{AccountID: "acme", WorkID: "job_1", Owner: "node-1", Runtime: rt,
		Records: []*herald.WorkRecord{rec}, Events: []*herald.Event{workEvent(t, "acme", "job_1", herald.VerbSyncComplete, t0)}})
	if rec.ID <= 0 || rec.WorkID != "job_1" {
		t.Errorf("record as saved: id %d, job %q; want an id and job_1", rec.ID, rec.WorkID)
	}
	wantRecords(t, "job_1's history", findRecords(t, s, "acme", "job_1", herald.WorkRecordFilter{}), []*herald.WorkRecord{rec})
	wantRuntime(t, "job_1 after its cycle", findJob(t, s, "acme", "job_1"), rt)

	// The cursor never moves back; the rest is stored as given.
	back := rt
	back.Cursor, back.Cycles = 15, 2
	saveProgress(t, s, &herald.WorkProgress{AccountID: "acme", WorkID: "job_1", Owner: "node-1", Runtime: back})
	back.Cursor = 20
	wantRuntime(t, "job_1 after a save with an older cursor", findJob(t, s, "acme", "job_1"), back)

	// Another owner, or another account's job of the same id, stores
	// nothing: no runtime, record or event.
	before = lastSeq(t, s, "acme")
	for _, p := range []*herald.WorkProgress{
		{AccountID: "acme", WorkID: "job_1", Owner: "node-2"},
		{AccountID: "globex", WorkID: "job_1", Owner: "node-2"},
		{AccountID: "acme", WorkID: "job_none", Owner: "node-1"},
	} {
		p.Runtime = herald.WorkRuntime{Cursor: 99}
		p.Records = []*herald.WorkRecord{cycleRecord(9, t0)}
		p.Events = []*herald.Event{workEvent(t, p.AccountID, p.WorkID, herald.VerbSynced, t0)}
		wantCode(t, fmt.Sprintf("SaveWorkProgress(%s/%s by %s)", p.AccountID, p.WorkID, p.Owner), s.SaveWorkProgress(ctx, p), herald.ECONFLICT)
	}
	if got := newEvents(t, s, "acme", before); len(got) != 0 {
		t.Errorf("refused saves wrote %s", fmtSystemEvents(got))
	}
	wantRuntime(t, "job_1 after refused saves", findJob(t, s, "acme", "job_1"), back)
	if got := findRecords(t, s, "acme", "job_1", herald.WorkRecordFilter{}); len(got) != 1 {
		t.Errorf("job_1 after refused saves has %d records, want 1", len(got))
	}

	// node-1's lease ran out and node-2 took it over: node-1 is refused.
	if got := jobKeys(leaseJobs(t, s, "node-2", t0.Add(2*ttl), ttl, 10)); !slices.Equal(got, []string{"acme/job_1", "globex/job_1"}) {
		t.Fatalf("node-2 after node-1's leases ran out holds %v", got)
	}
	wantCode(t, "SaveWorkProgress by node-1, which lost job_1", s.SaveWorkProgress(ctx, &herald.WorkProgress{
		AccountID: "acme", WorkID: "job_1", Owner: "node-1", Runtime: back}), herald.ECONFLICT)

	// Several records in one save get ids in the order given; the history
	// pages newest first.
	var recs []*herald.WorkRecord
	for i := range 4 {
		recs = append(recs, cycleRecord(int64(i+2), t0.Add(time.Duration(i)*time.Minute)))
	}
	saveProgress(t, s, &herald.WorkProgress{AccountID: "acme", WorkID: "job_1", Owner: "node-2", Runtime: back, Records: recs})
	for i := 1; i < len(recs); i++ {
		if recs[i].ID <= recs[i-1].ID {
			t.Errorf("records saved together got ids %d then %d; want them growing in the order given", recs[i-1].ID, recs[i].ID)
		}
	}
	all := []*herald.WorkRecord{recs[3], recs[2], recs[1], recs[0], rec}
	wantRecords(t, "all", findRecords(t, s, "acme", "job_1", herald.WorkRecordFilter{}), all)
	wantRecords(t, "limit 2", findRecords(t, s, "acme", "job_1", herald.WorkRecordFilter{Limit: 2}), all[:2])
	wantRecords(t, "page", findRecords(t, s, "acme", "job_1", herald.WorkRecordFilter{BeforeID: recs[2].ID, Limit: 2}), all[2:4])
	wantRecords(t, "last page", findRecords(t, s, "acme", "job_1", herald.WorkRecordFilter{BeforeID: recs[0].ID, Limit: 2}), all[4:])
	if got := findRecords(t, s, "globex", "job_1", herald.WorkRecordFilter{}); len(got) != 0 {
		t.Errorf("globex's job_1 has %d records; they are acme's", len(got))
	}

	// Completed: the job leaves the engine, and a later save is refused.
	done := workEvent(t, "acme", "job_1", herald.VerbCompleted, t0.Add(time.Hour))
	before = lastSeq(t, s, "acme")
	saveProgress(t, s, &herald.WorkProgress{AccountID: "acme", WorkID: "job_1", Owner: "node-2", Runtime: back,
		State: herald.WorkCompleted, Events: []*herald.Event{done}})
	if got := findJob(t, s, "acme", "job_1"); got.State != herald.WorkCompleted || got.StateReason != "" {
		t.Errorf("job_1 completed: state %q (%q)", got.State, got.StateReason)
	}
	if got := newEvents(t, s, "acme", before); len(got) != 1 || got[0].ID != done.ID {
		t.Errorf("the completing save wrote %s; want its completed event", fmtSystemEvents(got))
	}
	if got := jobKeys(leaseJobs(t, s, "node-2", t0.Add(3*ttl), ttl, 10)); !slices.Equal(got, []string{"globex/job_1"}) {
		t.Errorf("node-2 after job_1 completed holds %v, want [globex/job_1]", got)
	}
	wantCode(t, "SaveWorkProgress of a completed job", s.SaveWorkProgress(ctx, &herald.WorkProgress{
		AccountID: "acme", WorkID: "job_1", Owner: "node-2", Runtime: back}), herald.ECONFLICT)
	wantCode(t, "SaveWorkProgress with an unknown state", s.SaveWorkProgress(ctx, &herald.WorkProgress{
		AccountID: "globex", WorkID: "job_1", Owner: "node-2", State: "sleeping"}), herald.EINVALID)
	wantAuditVerified(t, s, "acme")
}

// testWorkFromTwoNodes has owners on two nodes lease jobs and save their
// progress at once, with leases that do not expire while they run: a job
// goes to one owner only, whose saves all go through.
func testWorkFromTwoNodes(t *testing.T, newDB NewDatabase) {
	open := newDB(t)
	nodes := []Store{open(), open()}
	const (
		numJobs       = 24
		ownersPerNode = 3
		maxEach       = 5
		callsEach     = 6
	)
	quietAccount(t, nodes[0], "acme")
	quietAccount(t, nodes[0], "globex")
	var all []string
	for i := range numJobs {
		account, id := []string{"acme", "globex"}[i%2], fmt.Sprintf("job_%02d", i)
		createJob(t, nodes[0], t.Context(), exportJob(account, id, herald.ExportStream, baseTime.Add(time.Duration(i)*time.Second)))
		all = append(all, account+"/"+id)
	}
	slices.Sort(all)
	twoNodeLeases[*herald.Work]{
		call:  "LeaseWork",
		lease: Store.LeaseWork,
		key:   jobKey,
		use: func(ctx context.Context, s Store, owner string, i int, held []*herald.Work) error {
			for _, j := range held {
				if err := s.SaveWorkProgress(ctx, &herald.WorkProgress{AccountID: j.AccountID, WorkID: j.ID, Owner: owner,
					Runtime: herald.WorkRuntime{Cursor: int64(i + 1)}}); err != nil {
					return fmt.Errorf("%s: SaveWorkProgress(%s/%s) of a job it holds: %w", owner, j.AccountID, j.ID, err)
				}
			}
			return nil
		},
		ownersPerNode: ownersPerNode, maxEach: maxEach, callsEach: callsEach,
	}.run(t, nodes, all, baseTime.Add(time.Hour))
}

// exportJob is a valid export of the account to a PostgreSQL table whose
// DSN holds a password, with the defaults set, made at created.
func exportJob(accountID, id, mode string, created time.Time) *herald.Work {
	w := &herald.Work{
		ID: id, AccountID: accountID, Kind: herald.WorkExport, Name: "Export " + id,
		Filter: herald.Filter{Categories: []string{"web"}},
		Export: &herald.ExportConfig{Mode: mode, Destination: herald.Destination{
			Type: herald.DestinationPostgres, DSN: "postgres://herald:" + dsnPassword + "@db.example.com:5432/warehouse", Table: "herald_events",
		}},
		CreatedAt: created,
	}
	if mode == herald.ExportBatch {
		w.Export.Every = herald.Duration(time.Hour)
	}
	w.SetDefaults()
	return w
}

// alertJob is a valid alert of the account, by email through a server
// with a password, with the defaults set, made at created.
func alertJob(accountID, id string, created time.Time) *herald.Work {
	w := &herald.Work{
		ID: id, AccountID: accountID, Kind: herald.WorkAlert, Name: "Alert " + id,
		Filter: herald.Filter{SystemEventType: herald.VerbFailed},
		Alert: &herald.AlertConfig{Threshold: 3, Window: herald.Duration(time.Hour), Cooldown: herald.Duration(time.Hour),
			Target: herald.Target{Kind: herald.TargetEmail, SMTP: &herald.SMTPConfig{Host: "smtp.example.com", Username: "herald", Password: smtpPassword},
				From: "alerts@example.com", To: []string{"ops@example.com"}}},
		CreatedAt: created,
	}
	w.SetDefaults()
	return w
}

// cycleRecord is the record of a finished export cycle.
func cycleRecord(number int64, started time.Time) *herald.WorkRecord {
	return &herald.WorkRecord{Kind: herald.RecordCycle, Number: number, State: herald.RecordSucceeded, StartedAt: started,
		FinishedAt: started.Add(time.Second), Events: 20, Units: 2, AfterSeq: 0, UpTo: 20,
		Detail: json.RawMessage(`{"table":"herald_events","rows":20}`)}
}

// workEvent is a system event about the job, by Herald, as its engine
// writes them.
func workEvent(t *testing.T, accountID, id, verb string, at time.Time) *herald.Event {
	t.Helper()
	e, err := herald.SystemEvent{AccountID: accountID, SubjectType: herald.SubjectWork, SubjectID: id, Verb: verb,
		By: herald.SystemActor, At: at, Notes: verb + " " + id}.Event()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// createJob stores w, which must be valid, failing the test if it cannot.
func createJob(t *testing.T, s Store, ctx context.Context, w *herald.Work) {
	t.Helper()
	if err := w.Validate(); err != nil {
		t.Fatalf("the case's job %s is not valid: %v", w.ID, err)
	}
	if err := s.CreateWork(ctx, w); err != nil {
		t.Fatalf("CreateWork(%s, %s): %v", w.AccountID, w.ID, err)
	}
}

func findJob(t *testing.T, s Store, accountID, id string) *herald.Work {
	t.Helper()
	got, err := s.FindWork(t.Context(), accountID, id)
	return must(t, got, err, "FindWork(%s, %s)", accountID, id)
}

func findJobs(t *testing.T, s Store, accountID, kind string) []*herald.Work {
	t.Helper()
	got, err := s.FindWorks(t.Context(), accountID, kind)
	return must(t, got, err, "FindWorks(%s, %q)", accountID, kind)
}

func findRecords(t *testing.T, s Store, accountID, id string, f herald.WorkRecordFilter) []*herald.WorkRecord {
	t.Helper()
	got, err := s.FindWorkRecords(t.Context(), accountID, id, f)
	return must(t, got, err, "FindWorkRecords(%s, %s, %+v)", accountID, id, f)
}

func leaseJobs(t *testing.T, s Store, owner string, now time.Time, ttl time.Duration, max int) []*herald.Work {
	t.Helper()
	got, err := s.LeaseWork(t.Context(), owner, now, ttl, max)
	return must(t, got, err, "LeaseWork(%s)", owner)
}

func saveProgress(t *testing.T, s Store, p *herald.WorkProgress) {
	t.Helper()
	if err := s.SaveWorkProgress(t.Context(), p); err != nil {
		t.Fatalf("SaveWorkProgress(%s/%s by %s): %v", p.AccountID, p.WorkID, p.Owner, err)
	}
}

func jobIDs(list []*herald.Work) []string {
	return idsOf(list, func(w *herald.Work) string { return w.ID })
}

func jobKey(w *herald.Work) string { return w.AccountID + "/" + w.ID }

// jobKeys returns "account/id" of each job, sorted.
func jobKeys(list []*herald.Work) []string {
	out := idsOf(list, jobKey)
	slices.Sort(out)
	return out
}

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// wantRuntime checks that got's runtime is want.
func wantRuntime(t *testing.T, what string, got *herald.Work, want herald.WorkRuntime) {
	t.Helper()
	if g, w := fmtJSON(got.Runtime), fmtJSON(want); g != w {
		t.Errorf("%s: runtime\n%s\nwant\n%s", what, g, w)
	}
}

// wantRecords checks a job's history against want, ids included.
func wantRecords(t *testing.T, what string, got, want []*herald.WorkRecord) {
	t.Helper()
	if g, w := fmtJSON(got), fmtJSON(want); g != w {
		t.Errorf("FindWorkRecords %s:\n%s\nwant\n%s", what, g, w)
	}
}
