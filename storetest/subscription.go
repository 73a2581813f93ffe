package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// testSubscriptions checks that a subscription is stored as given, that
// its cursor starts at the end of the log unless one is given, that an
// update replaces its settings and nothing else, and that each change
// writes its system event in the same commit, with no secret in it.
func testSubscriptions(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	admin := herald.Actor{ID: "key_admin", Type: herald.AgentTypeAPIKey}
	ctx := herald.NewContextWithActor(t.Context(), admin)
	base := quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	appendOne(t, s, "acme", page(t, "p1", "", "", baseTime), page(t, "p2", "", "", baseTime))
	last := base + 2
	var secrets []string

	// Created with cursor 0, it starts at the end of the log as it was
	// before the commit: it delivers what is stored from now on, its own
	// "created" event first.
	full := fullSubscription("acme", "sub_full")
	var secret string
	e := subChange(t, s, "acme", "CreateSubscription", func() error {
		secret = herald.NewSigningSecret()
		return s.CreateSubscription(ctx, full, secret)
	})
	secrets = append(secrets, secret)
	d := wantSystemEvent(t, "CreateSubscription", e, "acme", herald.SubjectSubscription, herald.VerbCreated, "sub_full", admin)
	wantMember(t, "CreateSubscription", d, "/after/id", "sub_full")
	wantMember(t, "CreateSubscription", d, "/after/url", full.URL)
	wantMember(t, "CreateSubscription", d, "/after/state", herald.SubscriptionActive)
	if _, ok := d["before"]; ok {
		t.Errorf("CreateSubscription: subscription created has data.before: %s", e.Data)
	}
	got := findSub(t, s, "acme", "sub_full")
	wantSubConfig(t, "sub_full as created", got, full)
	if got.Cursor != last {
		t.Errorf("sub_full created with cursor 0: cursor %d; want the account's last seq at creation, %d, before its own created event (%d)",
			got.Cursor, last, e.Seq)
	}
	if got.AccountID != "acme" || got.State != herald.SubscriptionActive || got.StateReason != "" || got.FailingSince != nil || got.CreatedAt.IsZero() {
		t.Errorf("sub_full as created: account %q, state %q (%q), failing since %v, created %s; want acme, active, not failing, a creation time",
			got.AccountID, got.State, got.StateReason, got.FailingSince, got.CreatedAt)
	}
	created := got.CreatedAt
	cursor := got.Cursor

	// A cursor given is kept: the subscription replays from there.
	replay := hookSub("acme", "sub_replay")
	replay.Cursor = 1
	replay.CreatedAt = baseTime
	secrets = append(secrets, createSub(t, s, ctx, replay))
	if got := findSub(t, s, "acme", "sub_replay"); got.Cursor != 1 || !got.CreatedAt.Equal(baseTime) {
		t.Errorf("sub_replay created with cursor 1 at %s: cursor %d, created %s; want both kept", baseTime, got.Cursor, got.CreatedAt)
	}
	if got := findSubs(t, s, "acme"); !slices.Equal(subIDs(got), []string{"sub_replay", "sub_full"}) {
		t.Errorf("FindSubscriptions(acme) = %v, want [sub_replay sub_full], oldest (by creation time) first", subIDs(got))
	}
	if got := findSubs(t, s, "globex"); len(got) != 0 {
		t.Errorf("FindSubscriptions(globex) = %v, want none", subIDs(got))
	}

	// Refused: an id taken, and changes to subscriptions that do not
	// exist. None writes an event.
	subRefused(t, s, "acme", "CreateSubscription(taken id)", herald.ECONFLICT, func() error {
		return s.CreateSubscription(ctx, hookSub("acme", "sub_full"), herald.NewSigningSecret())
	})
	if got := findSub(t, s, "acme", "sub_full"); got.URL != full.URL {
		t.Errorf("after a refused create of a taken id, sub_full has URL %q, want %q", got.URL, full.URL)
	}
	if sec := findSecrets(t, s, "acme", "sub_full"); len(sec) != 1 || sec[0].Secret != secret {
		t.Errorf("after a refused create of a taken id, sub_full signs with %v, want its own secret only", secretList(sec))
	}
	_, err := s.FindSubscriptionByID(t.Context(), "acme", "sub_none")
	wantCode(t, "FindSubscriptionByID(unknown)", err, herald.ENOTFOUND)
	subRefused(t, s, "acme", "UpdateSubscription(unknown)", herald.ENOTFOUND, func() error {
		return s.UpdateSubscription(ctx, hookSub("acme", "sub_none"))
	})
	subRefused(t, s, "acme", "SetSubscriptionState(unknown)", herald.ENOTFOUND, func() error {
		return s.SetSubscriptionState(ctx, "acme", "sub_none", herald.SubscriptionPaused, "")
	})
	subRefused(t, s, "acme", "DeleteSubscription(unknown)", herald.ENOTFOUND, func() error {
		return s.DeleteSubscription(ctx, "acme", "sub_none")
	})
	subRefused(t, s, "acme", "RotateSigningSecret(unknown)", herald.ENOTFOUND, func() error {
		return s.RotateSigningSecret(ctx, "acme", "sub_none", herald.NewSigningSecret(), time.Now().Add(time.Hour))
	})

	// The deliverer's state: a lease, a cursor moved on, a failure.
	t0 := baseTime.Add(time.Hour)
	lease(t, s, "node-1", t0, time.Hour, 10)
	failing := t0.Add(time.Second)
	saveDelivery(t, s, &herald.DeliveryProgress{
		AccountID: "acme", SubscriptionID: "sub_full", Owner: "node-1", Cursor: cursor + 5, FailingSince: &failing,
	})

	// An update replaces the settings and keeps the rest, whatever the
	// caller left in the other fields.
	changed := fullSubscription("acme", "sub_full")
	changed.Name = "Renamed"
	changed.URL = "https://hooks.example.com/other"
	changed.Filter = herald.Filter{SystemEventType: herald.VerbFailed, SystemEventSources: map[string][]string{"work": nil}}
	changed.Headers = map[string]string{"X-Team": "payments"}
	changed.JSONTemplate = ""
	changed.Ordered = false
	changed.MaxInFlight = 4
	changed.RetrySchedule = []herald.Duration{herald.Duration(time.Minute)}
	changed.Timeout = herald.Duration(3 * time.Second)
	changed.DisableAfter = herald.Duration(time.Hour)
	changed.RateLimit = 0
	other := t0.Add(time.Hour)
	changed.State, changed.StateReason, changed.Cursor, changed.FailingSince = herald.SubscriptionPaused, "sneaky", 1, &other
	changed.CreatedAt = baseTime.Add(-time.Hour)
	e = subChange(t, s, "acme", "UpdateSubscription", func() error { return s.UpdateSubscription(ctx, changed) })
	d = wantSystemEvent(t, "UpdateSubscription", e, "acme", herald.SubjectSubscription, herald.VerbUpdated, "sub_full", admin)
	wantMember(t, "UpdateSubscription", d, "/before/url", full.URL)
	wantMember(t, "UpdateSubscription", d, "/after/url", changed.URL)
	wantMember(t, "UpdateSubscription", d, "/before/name", full.Name)
	wantMember(t, "UpdateSubscription", d, "/after/name", "Renamed")
	for _, unchanged := range []string{"/before/id", "/after/id", "/before/state", "/after/state", "/after/cursor"} {
		if v, ok := member(d, unchanged); ok {
			t.Errorf("UpdateSubscription: data%s = %v, but it did not change", unchanged, v)
		}
	}
	got = findSub(t, s, "acme", "sub_full")
	wantSubConfig(t, "sub_full after the update", got, changed)
	if got.State != herald.SubscriptionActive || got.StateReason != "" || got.Cursor != cursor+5 ||
		got.FailingSince == nil || !got.FailingSince.Equal(failing) || !got.CreatedAt.Equal(created) {
		t.Errorf("sub_full after the update: state %q (%q), cursor %d, failing since %v, created %s;\n"+
			"want them kept: active, cursor %d, failing since %s, created %s",
			got.State, got.StateReason, got.Cursor, got.FailingSince, got.CreatedAt, cursor+5, failing, created)
	}
	// The lease is kept: its holder still records, and nobody else gets it.
	if held := lease(t, s, "node-2", t0.Add(time.Minute), time.Hour, 10); len(held) != 0 {
		t.Errorf("after the update, node-2 took %v, which node-1 holds", subKeys(held))
	}
	saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_full", Owner: "node-1"})

	// Pause and resume are updates of the state, by the key that asked.
	e = subChange(t, s, "acme", "SetSubscriptionState(paused)", func() error {
		return s.SetSubscriptionState(ctx, "acme", "sub_full", herald.SubscriptionPaused, "maintenance")
	})
	d = wantSystemEvent(t, "pause", e, "acme", herald.SubjectSubscription, herald.VerbUpdated, "sub_full", admin)
	wantMember(t, "pause", d, "/before/state", herald.SubscriptionActive)
	wantMember(t, "pause", d, "/after/state", herald.SubscriptionPaused)
	wantState(t, s, "acme", "sub_full", herald.SubscriptionPaused, "maintenance")
	e = subChange(t, s, "acme", "SetSubscriptionState(active)", func() error {
		return s.SetSubscriptionState(ctx, "acme", "sub_full", herald.SubscriptionActive, "")
	})
	d = wantSystemEvent(t, "resume", e, "acme", herald.SubjectSubscription, herald.VerbUpdated, "sub_full", admin)
	wantMember(t, "resume", d, "/before/state", herald.SubscriptionPaused)
	wantMember(t, "resume", d, "/after/state", herald.SubscriptionActive)
	wantState(t, s, "acme", "sub_full", herald.SubscriptionActive, "")

	// Disabled by Herald (410, or failing too long): "failed", with the
	// reason as its notes.
	const reason = "endpoint answered 410 Gone"
	e = subChange(t, s, "acme", "SetSubscriptionState(disabled)", func() error {
		return s.SetSubscriptionState(t.Context(), "acme", "sub_full", herald.SubscriptionDisabled, reason)
	})
	d = wantSystemEvent(t, "disable", e, "acme", herald.SubjectSubscription, herald.VerbFailed, "sub_full", herald.SystemActor)
	wantMember(t, "disable", d, "/notes", reason)
	wantState(t, s, "acme", "sub_full", herald.SubscriptionDisabled, reason)
	e = subChange(t, s, "acme", "SetSubscriptionState(active) after disabled", func() error {
		return s.SetSubscriptionState(ctx, "acme", "sub_full", herald.SubscriptionActive, "")
	})
	d = wantSystemEvent(t, "resume after disabled", e, "acme", herald.SubjectSubscription, herald.VerbUpdated, "sub_full", admin)
	wantMember(t, "resume after disabled", d, "/before/state", herald.SubscriptionDisabled)
	wantMember(t, "resume after disabled", d, "/after/state", herald.SubscriptionActive)
	// Resumed, it starts afresh: its failures before it stopped do not
	// count towards disabling it again.
	if got := findSub(t, s, "acme", "sub_full"); got.Cursor != cursor+5 || got.FailingSince != nil {
		t.Errorf("sub_full after a pause, a disable and a resume: cursor %d, failing since %v; want the cursor kept, %d, and not failing",
			got.Cursor, got.FailingSince, cursor+5)
	}

	// A rotation says so, and not with the secret.
	var rotated string
	e = subChange(t, s, "acme", "RotateSigningSecret", func() error {
		rotated = herald.NewSigningSecret()
		return s.RotateSigningSecret(ctx, "acme", "sub_full", rotated, time.Now().Add(time.Hour))
	})
	secrets = append(secrets, rotated)
	d = wantSystemEvent(t, "RotateSigningSecret", e, "acme", herald.SubjectSubscription, herald.VerbUpdated, "sub_full", admin)
	wantMember(t, "RotateSigningSecret", d, "/secretRotated", true)

	// A failure cleared by a success: "recovered", by Herald, in the
	// commit that records the success.
	failing = t0.Add(time.Minute)
	saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_full", Owner: "node-1", FailingSince: &failing})
	e = subChange(t, s, "acme", "SaveDelivery(ClearFailing)", func() error {
		return s.SaveDelivery(t.Context(), &herald.DeliveryProgress{
			AccountID: "acme", SubscriptionID: "sub_full", Owner: "node-1", ClearFailing: true,
		})
	})
	d = wantSystemEvent(t, "recovered", e, "acme", herald.SubjectSubscription, "recovered", "sub_full", herald.SystemActor)
	wantMember(t, "recovered", d, "/notes", "deliveries succeed again")
	if got := findSub(t, s, "acme", "sub_full"); got.FailingSince != nil {
		t.Errorf("sub_full after ClearFailing: failing since %s, want not failing", got.FailingSince)
	}

	// Deleted: the event carries what it was.
	e = subChange(t, s, "acme", "DeleteSubscription", func() error { return s.DeleteSubscription(ctx, "acme", "sub_full") })
	d = wantSystemEvent(t, "DeleteSubscription", e, "acme", herald.SubjectSubscription, herald.VerbDeleted, "sub_full", admin)
	wantMember(t, "DeleteSubscription", d, "/before/id", "sub_full")
	wantMember(t, "DeleteSubscription", d, "/before/url", changed.URL)
	if _, ok := d["after"]; ok {
		t.Errorf("DeleteSubscription: subscription deleted has data.after: %s", e.Data)
	}
	_, err = s.FindSubscriptionByID(t.Context(), "acme", "sub_full")
	wantCode(t, "FindSubscriptionByID(deleted)", err, herald.ENOTFOUND)
	if got := findSubs(t, s, "acme"); !slices.Equal(subIDs(got), []string{"sub_replay"}) {
		t.Errorf("FindSubscriptions(acme) after the delete = %v, want [sub_replay]", subIDs(got))
	}
	subRefused(t, s, "acme", "DeleteSubscription(deleted)", herald.ENOTFOUND, func() error {
		return s.DeleteSubscription(ctx, "acme", "sub_full")
	})
	if held := lease(t, s, "node-1", t0.Add(2*time.Minute), time.Hour, 10); !slices.Equal(subKeys(held), []string{"acme/sub_replay"}) {
		t.Errorf("node-1 after the delete holds %v, want [acme/sub_replay]", subKeys(held))
	}

	wantNoSecret(t, s, "acme", secrets)
	wantAuditVerified(t, s, "acme")
	if got := allEvents(t, s, "globex", herald.EventFilter{Category: herald.SubjectSubscription}); len(got) != 0 {
		t.Errorf("globex holds %s; acme's subscriptions wrote there", fmtSystemEvents(got))
	}
}

// testSigningSecrets checks rotation: the current secret first, then the
// rotated ones until they expire, newest first.
func testSigningSecrets(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	first := createSub(t, s, ctx, hookSub("acme", "sub_1"))
	other := createSub(t, s, ctx, hookSub("acme", "sub_2"))
	if got := findSecrets(t, s, "acme", "sub_1"); len(got) != 1 || got[0].Secret != first || got[0].ExpiresAt != nil {
		t.Fatalf("FindSigningSecrets after the create = %s, want [%s] without expiry", fmtSecrets(got), first)
	}

	// FindSigningSecrets takes now from the clock: the expiries are set
	// far enough from it that the case does not depend on its speed.
	now := time.Now().UTC().Truncate(time.Microsecond)
	rotate := func(secret string, oldExpiresAt time.Time) {
		t.Helper()
		if err := s.RotateSigningSecret(ctx, "acme", "sub_1", secret, oldExpiresAt); err != nil {
			t.Fatalf("RotateSigningSecret: %v", err)
		}
	}
	second, third, fourth := herald.NewSigningSecret(), herald.NewSigningSecret(), herald.NewSigningSecret()
	in1h, in2h := now.Add(time.Hour), now.Add(2*time.Hour)
	rotate(second, in1h)
	wantSecrets(t, "after one rotation", findSecrets(t, s, "acme", "sub_1"), []herald.SigningSecret{
		{Secret: second}, {Secret: first, ExpiresAt: &in1h},
	})
	rotate(third, in2h)
	wantSecrets(t, "after two rotations", findSecrets(t, s, "acme", "sub_1"), []herald.SigningSecret{
		{Secret: third}, {Secret: second, ExpiresAt: &in2h}, {Secret: first, ExpiresAt: &in1h},
	})
	// A rotation that lets the replaced one expire at once (it leaked).
	rotate(fourth, now.Add(-time.Minute))
	wantSecrets(t, "after a rotation that expires the old one at once", findSecrets(t, s, "acme", "sub_1"), []herald.SigningSecret{
		{Secret: fourth}, {Secret: second, ExpiresAt: &in2h}, {Secret: first, ExpiresAt: &in1h},
	})
	// Rotations drop the secrets that expired; one that expires between
	// two rotations must go all the same.
	fifth := herald.NewSigningSecret()
	rotate(fifth, time.Now().Add(200*time.Millisecond))
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := findSecrets(t, s, "acme", "sub_1")
		if slices.Equal(secretList(got), []string{fifth, second, first}) {
			break
		}
		if !slices.Equal(secretList(got), []string{fifth, fourth, second, first}) || time.Now().After(deadline) {
			t.Fatalf("FindSigningSecrets after a rotation whose old secret expires in 200ms = %s;\nwant %s, then without %s once expired",
				fmtSecrets(got), fmtSecrets([]herald.SigningSecret{{Secret: fifth}, {Secret: fourth}, {Secret: second}, {Secret: first}}), fourth[:12])
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The other subscription's secret is its own.
	if got := findSecrets(t, s, "acme", "sub_2"); len(got) != 1 || got[0].Secret != other {
		t.Errorf("FindSigningSecrets(sub_2) = %s, want only its own, %s", fmtSecrets(got), other)
	}

	// Deleted with the subscription, as its messages and attempts are:
	// one made again with the same id signs with its new secret alone,
	// and starts with no history.
	t0 := baseTime.Add(time.Hour)
	lease(t, s, "node-1", t0, time.Hour, 10)
	saveDelivery(t, s, &herald.DeliveryProgress{
		AccountID: "acme", SubscriptionID: "sub_1", Owner: "node-1",
		Attempts: []*herald.Attempt{attempt("sub_1", "ev-1", 1, 1, t0, herald.AttemptFailed, 500)},
		Messages: []*herald.Message{message("sub_1", "ev-1", 1, herald.MessageDead, 1, time.Time{}, t0)},
	})
	if err := s.DeleteSubscription(ctx, "acme", "sub_1"); err != nil {
		t.Fatalf("DeleteSubscription: %v", err)
	}
	if got, err := s.FindSigningSecrets(ctx, "acme", "sub_1"); len(got) != 0 || (err != nil && herald.ErrorCode(err) != herald.ENOTFOUND) {
		t.Errorf("FindSigningSecrets(deleted) = %s, %v; want none", fmtSecrets(got), err)
	}
	again := createSub(t, s, ctx, hookSub("acme", "sub_1"))
	wantSecrets(t, "of sub_1 made again", findSecrets(t, s, "acme", "sub_1"), []herald.SigningSecret{{Secret: again}})
	if got := findMessages(t, s, "acme", "sub_1", herald.MessageFilter{Limit: 100}); len(got) != 0 {
		t.Errorf("sub_1 made again has the messages of the one deleted: %s", fmtMessages(got))
	}
	if got := findAttempts(t, s, "acme", "sub_1", herald.AttemptFilter{Limit: 100}); len(got) != 0 {
		t.Errorf("sub_1 made again has the %d attempts of the one deleted", len(got))
	}
	if n, err := s.RetryMessages(ctx, "acme", "sub_1", herald.MessageFilter{}, t0); err != nil || n != 0 {
		t.Errorf("RetryMessages(sub_1 made again) = %d, %v; want 0: the dead message was deleted", n, err)
	}
	// Made again, it is free: the old one's lease went with it.
	if held := subKeys(lease(t, s, "node-2", t0.Add(time.Minute), time.Hour, 10)); !slices.Equal(held, []string{"acme/sub_1"}) {
		t.Errorf("node-2 holds %v; want sub_1 made again, which nobody holds", held)
	}
	wantNoSecret(t, s, "acme", []string{first, second, third, fourth, fifth, other, again})
}

// testSubscriptionsOfTwoAccounts checks that every call is scoped by
// account: another account's calls neither see nor change a
// subscription, even under the same id.
func testSubscriptionsOfTwoAccounts(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	ctx := t.Context()
	quietAccount(t, s, "acme")
	quietAccount(t, s, "globex")
	quietAccount(t, s, "initech")
	acme := hookSub("acme", "sub_1")
	acme.Cursor = 3
	acmeSecret := createSub(t, s, ctx, acme)
	globex := hookSub("globex", "sub_1")
	globex.URL = "https://globex.example.com/hook"
	globex.Cursor = 4
	globexSecret := createSub(t, s, ctx, globex)
	t0 := baseTime.Add(time.Hour)
	if held := lease(t, s, "node-1", t0, time.Hour, 10); !slices.Equal(subKeys(held), []string{"acme/sub_1", "globex/sub_1"}) {
		t.Fatalf("node-1 holds %v, want both accounts' sub_1", subKeys(held))
	}
	msg := func(seq int64, state string) *herald.Message {
		return &herald.Message{SubscriptionID: "sub_1", EventID: fmt.Sprintf("ev-%d", seq), Seq: seq, State: state,
			Attempts: 1, NextAttemptAt: t0, CreatedAt: t0, UpdatedAt: t0}
	}
	saveDelivery(t, s, &herald.DeliveryProgress{
		AccountID: "acme", SubscriptionID: "sub_1", Owner: "node-1", Cursor: 10,
		Messages: []*herald.Message{msg(5, herald.MessageRetrying), msg(6, herald.MessageDead)},
		Attempts: []*herald.Attempt{{SubscriptionID: "sub_1", EventID: "ev-5", Seq: 5, Number: 1, At: t0, Outcome: herald.AttemptFailed, StatusCode: 503}},
	})

	// initech sees nothing of acme's sub_1.
	_, err := s.FindSubscriptionByID(ctx, "initech", "sub_1")
	wantCode(t, "FindSubscriptionByID(initech, acme's id)", err, herald.ENOTFOUND)
	if got := findSubs(t, s, "initech"); len(got) != 0 {
		t.Errorf("FindSubscriptions(initech) = %v, want none", subIDs(got))
	}
	if got, err := s.FindSigningSecrets(ctx, "initech", "sub_1"); len(got) != 0 || (err != nil && herald.ErrorCode(err) != herald.ENOTFOUND) {
		t.Errorf("FindSigningSecrets(initech, acme's id) = %s, %v; want none", fmtSecrets(got), err)
	}
	if got := dueMessages(t, s, "initech", "sub_1", t0.Add(time.Hour), 100); len(got) != 0 {
		t.Errorf("DueMessages(initech, acme's id) = %v, want none", msgSeqs(got))
	}
	if got := findMessages(t, s, "initech", "sub_1", herald.MessageFilter{Limit: 100}); len(got) != 0 {
		t.Errorf("FindMessages(initech, acme's id) = %v, want none", msgSeqs(got))
	}
	if got := findAttempts(t, s, "initech", "sub_1", herald.AttemptFilter{Limit: 100}); len(got) != 0 {
		t.Errorf("FindAttempts(initech, acme's id) = %d attempts, want none", len(got))
	}
	if n, err := s.RetryMessages(ctx, "initech", "sub_1", herald.MessageFilter{Limit: 100}, t0); err != nil || n != 0 {
		t.Errorf("RetryMessages(initech, acme's id) = %d, %v; want 0", n, err)
	}
	up := hookSub("initech", "sub_1")
	up.URL = "https://evil.example.com/"
	wantCode(t, "UpdateSubscription(initech, acme's id)", s.UpdateSubscription(ctx, up), herald.ENOTFOUND)
	wantCode(t, "SetSubscriptionState(initech, acme's id)",
		s.SetSubscriptionState(ctx, "initech", "sub_1", herald.SubscriptionPaused, ""), herald.ENOTFOUND)
	wantCode(t, "RotateSigningSecret(initech, acme's id)",
		s.RotateSigningSecret(ctx, "initech", "sub_1", herald.NewSigningSecret(), time.Now().Add(time.Hour)), herald.ENOTFOUND)
	wantCode(t, "DeleteSubscription(initech, acme's id)", s.DeleteSubscription(ctx, "initech", "sub_1"), herald.ENOTFOUND)
	// The lease is acme's: a progress of another account is refused.
	wantCode(t, "SaveDelivery(initech, acme's id)", s.SaveDelivery(ctx, &herald.DeliveryProgress{
		AccountID: "initech", SubscriptionID: "sub_1", Owner: "node-1", Cursor: 20,
	}), herald.ECONFLICT)

	// globex's sub_1 is its own: acme's progress did not touch it.
	g := findSub(t, s, "globex", "sub_1")
	if g.URL != globex.URL || g.Cursor != 4 || g.State != herald.SubscriptionActive {
		t.Errorf("globex's sub_1: URL %q, cursor %d, state %q; want %q, 4, active", g.URL, g.Cursor, g.State, globex.URL)
	}
	if got := findMessages(t, s, "globex", "sub_1", herald.MessageFilter{Limit: 100}); len(got) != 0 {
		t.Errorf("FindMessages(globex, sub_1) = %v, want none: they are acme's", msgSeqs(got))
	}
	if got := findAttempts(t, s, "globex", "sub_1", herald.AttemptFilter{Limit: 100}); len(got) != 0 {
		t.Errorf("FindAttempts(globex, sub_1) = %d attempts, want none: they are acme's", len(got))
	}
	if got := dueMessages(t, s, "globex", "sub_1", t0.Add(time.Hour), 100); len(got) != 0 {
		t.Errorf("DueMessages(globex, sub_1) = %v, want none", msgSeqs(got))
	}
	if n, err := s.RetryMessages(ctx, "globex", "sub_1", herald.MessageFilter{Limit: 100}, t0); err != nil || n != 0 {
		t.Errorf("RetryMessages(globex, sub_1) = %d, %v; want 0: the dead message is acme's", n, err)
	}
	if got := findSecrets(t, s, "globex", "sub_1"); len(got) != 1 || got[0].Secret != globexSecret {
		t.Errorf("FindSigningSecrets(globex, sub_1) = %s, want its own, %s", fmtSecrets(got), globexSecret)
	}

	// Changes in globex leave acme's alone.
	if err := s.SetSubscriptionState(ctx, "globex", "sub_1", herald.SubscriptionPaused, ""); err != nil {
		t.Fatalf("SetSubscriptionState(globex): %v", err)
	}
	if err := s.RotateSigningSecret(ctx, "globex", "sub_1", herald.NewSigningSecret(), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("RotateSigningSecret(globex): %v", err)
	}
	if err := s.DeleteSubscription(ctx, "globex", "sub_1"); err != nil {
		t.Fatalf("DeleteSubscription(globex): %v", err)
	}
	a := findSub(t, s, "acme", "sub_1")
	if a.URL != acme.URL || a.Cursor != 10 || a.State != herald.SubscriptionActive {
		t.Errorf("acme's sub_1 after globex's changes: URL %q, cursor %d, state %q; want %q, 10, active", a.URL, a.Cursor, a.State, acme.URL)
	}
	if got := findSecrets(t, s, "acme", "sub_1"); len(got) != 1 || got[0].Secret != acmeSecret {
		t.Errorf("acme's secrets after globex's changes = %s, want [%s]", fmtSecrets(got), acmeSecret)
	}
	if got := findMessages(t, s, "acme", "sub_1", herald.MessageFilter{Limit: 100}); !slices.Equal(msgSeqs(got), []int64{5, 6}) {
		t.Errorf("acme's messages after globex's changes = %v, want [5 6]", msgSeqs(got))
	}
	if got := findAttempts(t, s, "acme", "sub_1", herald.AttemptFilter{Limit: 100}); len(got) != 1 {
		t.Errorf("acme's attempts after globex's changes = %d, want 1", len(got))
	}
	if got := allEvents(t, s, "initech", herald.EventFilter{Category: herald.SubjectSubscription}); len(got) != 0 {
		t.Errorf("initech holds %s, but its calls were all refused", fmtSystemEvents(got))
	}
}

// testSubscriptionsCancelledContext checks that the subscription and
// delivery calls give up on a cancelled context and change nothing.
func testSubscriptionsCancelledContext(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	quietAccount(t, s, "acme")
	sub := hookSub("acme", "sub_1")
	sub.Cursor = 1
	secret := createSub(t, s, t.Context(), sub)
	t0 := baseTime.Add(time.Hour)
	lease(t, s, "node-1", t0, time.Hour, 10)
	dead := &herald.Message{SubscriptionID: "sub_1", EventID: "ev-1", Seq: 1, State: herald.MessageDead, Attempts: 8, CreatedAt: t0, UpdatedAt: t0}
	saveDelivery(t, s, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_1", Owner: "node-1", Cursor: 2,
		Messages: []*herald.Message{dead}})
	before := allEvents(t, s, "acme", herald.EventFilter{})

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"CreateSubscription", func() error { return s.CreateSubscription(ctx, hookSub("acme", "sub_2"), herald.NewSigningSecret()) }},
		{"FindSubscriptionByID", func() error { _, err := s.FindSubscriptionByID(ctx, "acme", "sub_1"); return err }},
		{"FindSubscriptions", func() error { _, err := s.FindSubscriptions(ctx, "acme"); return err }},
		{"UpdateSubscription", func() error {
			u := hookSub("acme", "sub_1")
			u.URL = "https://cancelled.example.com/"
			return s.UpdateSubscription(ctx, u)
		}},
		{"SetSubscriptionState", func() error {
			return s.SetSubscriptionState(ctx, "acme", "sub_1", herald.SubscriptionPaused, "")
		}},
		{"DeleteSubscription", func() error { return s.DeleteSubscription(ctx, "acme", "sub_1") }},
		{"FindSigningSecrets", func() error { _, err := s.FindSigningSecrets(ctx, "acme", "sub_1"); return err }},
		{"RotateSigningSecret", func() error {
			return s.RotateSigningSecret(ctx, "acme", "sub_1", herald.NewSigningSecret(), time.Now())
		}},
		{"LeaseSubscriptions", func() error {
			_, err := s.LeaseSubscriptions(ctx, "node-2", t0.Add(2*time.Hour), time.Hour, 10)
			return err
		}},
		{"ReleaseSubscriptions", func() error { return s.ReleaseSubscriptions(ctx, "node-1") }},
		{"SaveDelivery", func() error {
			return s.SaveDelivery(ctx, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_1", Owner: "node-1", Cursor: 9})
		}},
		{"DueMessages", func() error { _, err := s.DueMessages(ctx, "acme", "sub_1", t0, 10); return err }},
		{"FindMessages", func() error {
			_, err := s.FindMessages(ctx, "acme", "sub_1", herald.MessageFilter{Limit: 10})
			return err
		}},
		{"RetryMessages", func() error {
			_, err := s.RetryMessages(ctx, "acme", "sub_1", herald.MessageFilter{Limit: 10}, t0)
			return err
		}},
		{"FindAttempts", func() error {
			_, err := s.FindAttempts(ctx, "acme", "sub_1", herald.AttemptFilter{Limit: 10})
			return err
		}},
	} {
		if err := tc.call(); err == nil {
			t.Errorf("%s with a cancelled context: no error", tc.name)
		}
	}

	if got := findSubs(t, s, "acme"); !slices.Equal(subIDs(got), []string{"sub_1"}) {
		t.Errorf("subscriptions after cancelled calls = %v, want [sub_1]", subIDs(got))
	}
	got := findSub(t, s, "acme", "sub_1")
	if got.URL != hookSub("acme", "sub_1").URL || got.State != herald.SubscriptionActive || got.Cursor != 2 {
		t.Errorf("sub_1 after cancelled calls: URL %q, state %q, cursor %d; want unchanged", got.URL, got.State, got.Cursor)
	}
	if got := findSecrets(t, s, "acme", "sub_1"); len(got) != 1 || got[0].Secret != secret {
		t.Errorf("secrets after a cancelled rotation = %s, want [%s]", fmtSecrets(got), secret)
	}
	if got := findMessages(t, s, "acme", "sub_1", herald.MessageFilter{Limit: 10}); len(got) != 1 || got[0].State != herald.MessageDead {
		t.Errorf("messages after a cancelled retry = %s, want seq 1 dead", fmtMessages(got))
	}
	// node-1 still holds it: the cancelled release let nothing go.
	if held := lease(t, s, "node-2", t0.Add(time.Minute), time.Hour, 10); len(held) != 0 {
		t.Errorf("after a cancelled release, node-2 took %v", subKeys(held))
	}
	if after := allEvents(t, s, "acme", herald.EventFilter{}); !slices.Equal(ids(after), ids(before)) {
		t.Errorf("events after cancelled calls: %s; want none new", fmtSystemEvents(after[len(before):]))
	}
}

// hookSub returns a valid subscription of the account, with the defaults
// set, to https://hooks.example.com/<id>.
func hookSub(accountID, id string) *herald.Subscription {
	s := &herald.Subscription{ID: id, AccountID: accountID, Name: "Hook " + id, URL: "https://hooks.example.com/" + id}
	s.SetDefaults()
	return s
}

// fullSubscription is hookSub with every setting a client may choose set
// to something other than its default.
func fullSubscription(accountID, id string) *herald.Subscription {
	s := hookSub(accountID, id)
	s.Filter = herald.Filter{
		SystemEventMultipleTypes: []string{herald.VerbFailed, herald.VerbCompleted},
		SystemEventSources:       map[string][]string{"work": {"W1", "W2"}, "workflow": {}},
		Categories:               []string{"work"},
		Types:                    []string{"fail*"},
		Origin:                   herald.OriginSystem,
	}
	s.Headers = map[string]string{"Authorization": "Bearer partner-token", "X-Source": "herald"}
	s.JSONTemplate = `{ text: "Job " + event.data.subject_id + " " + event.data.verb }`
	s.RateLimit = 12.5
	s.Ordered = true
	s.MaxInFlight = 3
	s.RetrySchedule = []herald.Duration{herald.Duration(10 * time.Second), herald.Duration(time.Hour)}
	s.Timeout = herald.Duration(5 * time.Second)
	s.DisableAfter = herald.Duration(48 * time.Hour)
	return s
}

// createSub stores sub with a fresh secret, which it returns, and checks
// that the case's subscription is valid.
func createSub(t *testing.T, s Store, ctx context.Context, sub *herald.Subscription) string {
	t.Helper()
	if err := sub.Validate(); err != nil {
		t.Fatalf("the case's subscription %s is not valid: %v", sub.ID, err)
	}
	secret := herald.NewSigningSecret()
	if err := s.CreateSubscription(ctx, sub, secret); err != nil {
		t.Fatalf("CreateSubscription(%s, %s): %v", sub.AccountID, sub.ID, err)
	}
	return secret
}

func findSub(t *testing.T, s Store, accountID, id string) *herald.Subscription {
	t.Helper()
	got, err := s.FindSubscriptionByID(t.Context(), accountID, id)
	return must(t, got, err, "FindSubscriptionByID(%s, %s)", accountID, id)
}

func findSubs(t *testing.T, s Store, accountID string) []*herald.Subscription {
	t.Helper()
	got, err := s.FindSubscriptions(t.Context(), accountID)
	return must(t, got, err, "FindSubscriptions(%s)", accountID)
}

func findSecrets(t *testing.T, s Store, accountID, id string) []herald.SigningSecret {
	t.Helper()
	got, err := s.FindSigningSecrets(t.Context(), accountID, id)
	return must(t, got, err, "FindSigningSecrets(%s, %s)", accountID, id)
}

func subIDs(list []*herald.Subscription) []string {
	return idsOf(list, func(s *herald.Subscription) string { return s.ID })
}

// subKeys returns "account/id" of each subscription, sorted.
func subKey(s *herald.Subscription) string { return s.AccountID + "/" + s.ID }

func subKeys(list []*herald.Subscription) []string {
	out := idsOf(list, subKey)
	slices.Sort(out)
	return out
}

// subConfig encodes the settings a client chooses: what an update
// replaces.
func subConfig(t *testing.T, s *herald.Subscription) string {
	t.Helper()
	c := *s
	c.AccountID, c.State, c.StateReason, c.FailingSince, c.Cursor = "", "", "", nil, 0
	c.CreatedAt, c.UpdatedAt = time.Time{}, time.Time{}
	b, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantSubConfig checks that got has the settings of want.
func wantSubConfig(t *testing.T, what string, got, want *herald.Subscription) {
	t.Helper()
	if g, w := subConfig(t, got), subConfig(t, want); g != w {
		t.Errorf("%s: settings\n%s\nwant\n%s", what, g, w)
	}
}

func wantState(t *testing.T, s Store, accountID, id, state, reason string) {
	t.Helper()
	if got := findSub(t, s, accountID, id); got.State != state || got.StateReason != reason {
		t.Errorf("%s: state %q (%q), want %q (%q)", id, got.State, got.StateReason, state, reason)
	}
}

// subChange runs do, which must succeed, and returns the one event it
// wrote to the account: a system event at the time of the call.
func subChange(t *testing.T, s Store, accountID, what string, do func() error) *herald.Event {
	t.Helper()
	before := lastSeq(t, s, accountID)
	start := time.Now()
	if err := do(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	end := time.Now()
	written := newEvents(t, s, accountID, before)
	if len(written) != 1 {
		t.Fatalf("%s wrote %s; want one system event", what, fmtSystemEvents(written))
	}
	wantChangeTime(t, what, written[0], start, end)
	return written[0]
}

// subRefused runs do, which must fail with code, and checks that it wrote
// no event.
func subRefused(t *testing.T, s Store, accountID, what, code string, do func() error) {
	t.Helper()
	before := lastSeq(t, s, accountID)
	wantCode(t, what, do(), code)
	if got := newEvents(t, s, accountID, before); len(got) != 0 {
		t.Errorf("%s was refused but wrote %s", what, fmtSystemEvents(got))
	}
}

// wantNoSecret checks that no event of the account holds any of secrets,
// nor the key part of one.
func wantNoSecret(t *testing.T, s Store, accountID string, secrets []string) {
	t.Helper()
	for _, e := range allEvents(t, s, accountID, herald.EventFilter{}) {
		for _, secret := range secrets {
			key := strings.TrimPrefix(secret, herald.SecretPrefix)
			if bytes.Contains(e.Body, []byte(key)) || bytes.Contains(e.Data, []byte(key)) {
				t.Errorf("event %d (%s/%s) holds a signing secret: %s", e.Seq, e.Category, e.Type, e.Body)
			}
		}
	}
}

// wantSecrets checks the secrets and their order; CreatedAt is the
// store's.
func wantSecrets(t *testing.T, what string, got, want []herald.SigningSecret) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.Secret == w.Secret && (g.ExpiresAt == nil) == (w.ExpiresAt == nil) &&
			(g.ExpiresAt == nil || g.ExpiresAt.Equal(*w.ExpiresAt)) && !g.CreatedAt.IsZero()
	}
	if !ok {
		t.Errorf("FindSigningSecrets %s = %s,\nwant %s", what, fmtSecrets(got), fmtSecrets(want))
	}
}

func secretList(list []herald.SigningSecret) []string {
	return idsOf(list, func(s herald.SigningSecret) string { return s.Secret })
}

func fmtSecrets(list []herald.SigningSecret) string {
	parts := make([]string, len(list))
	for i, s := range list {
		exp := "current"
		if s.ExpiresAt != nil {
			exp = "expires " + s.ExpiresAt.UTC().Format(time.RFC3339Nano)
		}
		parts[i] = fmt.Sprintf("%s… (%s, created %s)", s.Secret[:min(len(s.Secret), 12)], exp, s.CreatedAt.UTC().Format(time.RFC3339Nano))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}
