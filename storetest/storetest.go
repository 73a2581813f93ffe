// Package storetest is the one conformance suite every Herald store must
// pass. Each store's own test calls Run with a way to open it; a behaviour
// tested here holds on SQLite and on PostgreSQL alike.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// Store is everything one database provides.
type Store interface {
	herald.AccountService
	herald.KeyService
	herald.EventService
	herald.EventTypeService
	herald.SettingsService
	herald.LifecycleService
	herald.ProfileService
	herald.SessionService
	herald.VisitService
	herald.JourneySweeper
	herald.AuditService
	herald.SubscriptionService
	herald.DeliveryService
	herald.WorkflowService
	herald.WorkflowQueue
	herald.WorkService
	herald.WorkQueue
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}

// Opener opens a handle on one database. Calling it twice gives two
// independent handles on the same data, as two `herald serve` processes
// would have: the concurrency cases use this. The handles are closed by
// t.Cleanup.
type Opener func() Store

// NewDatabase returns an Opener on a fresh, empty database of its own, so
// that tests can run in parallel.
type NewDatabase func(t *testing.T) Opener

// Run runs the whole suite against the store that newDB opens. Every case
// asks newDB for a database of its own, and they run in parallel: Run
// returns before they finish, and the caller's t waits for them.
func Run(t *testing.T, newDB NewDatabase) {
	for _, c := range []struct {
		name string
		test func(*testing.T, NewDatabase)
	}{
		{"Ping", testPing},
		{"Accounts", testAccounts},
		{"Keys", testKeys},
		{"Events", testEvents},
		{"FindEvents", testFindEvents},
		{"FindEventsByTime", testFindEventsByTime},
		{"OrderWithoutGaps", testOrderWithoutGaps},
		{"SameIDFromTwoNodes", testSameIDFromTwoNodes},
		{"ManyAccountsNoDeadlock", testManyAccountsNoDeadlock},
		{"CancelledContext", testCancelledContext},
		{"EventTypes", testEventTypes},
		{"Settings", testSettings},
		{"Lifecycles", testLifecycles},
		{"FindLifecycles", testFindLifecycles},
		{"Profiles", testProfiles},
		{"FindProfiles", testFindProfiles},
		{"EraseProfile", testEraseProfile},
		{"FindEventsByEntity", testFindEventsByEntity},
		{"TrackingFromTwoNodes", testTrackingFromTwoNodes},
		{"SystemEventsForChanges", testSystemEventsForChanges},
		{"Sessions", testSessions},
		{"FindSessions", testFindSessions},
		{"Visits", testVisits},
		{"FindVisits", testFindVisits},
		{"Expiry", testExpiry},
		{"JourneysFromTwoNodes", testJourneysFromTwoNodes},
		{"Audit", testAudit},
		{"AuditFromTwoNodes", testAuditFromTwoNodes},
		{"FindSystemEvents", testFindSystemEvents},
		{"Subscriptions", testSubscriptions},
		{"SigningSecrets", testSigningSecrets},
		{"SubscriptionsOfTwoAccounts", testSubscriptionsOfTwoAccounts},
		{"SubscriptionsCancelledContext", testSubscriptionsCancelledContext},
		{"Leases", testLeases},
		{"LeasesFromTwoNodes", testLeasesFromTwoNodes},
		{"SaveDelivery", testSaveDelivery},
		{"DueMessages", testDueMessages},
		{"RetryMessages", testRetryMessages},
		{"FindAttempts", testFindAttempts},
		{"PruneAttempts", testPruneAttempts},
		{"DeliveryFromTwoNodes", testDeliveryFromTwoNodes},
		{"Workflows", testWorkflows},
		{"WorkflowLeases", testWorkflowLeases},
		{"ClaimRuns", testClaimRuns},
		{"FindWorkflowRuns", testFindWorkflowRuns},
		{"WorkflowsFromTwoNodes", testWorkflowsFromTwoNodes},
		{"Work", testWork},
		{"WorkLeases", testWorkLeases},
		{"SaveWorkProgress", testSaveWorkProgress},
		{"WorkFromTwoNodes", testWorkFromTwoNodes},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.test(t, newDB)
		})
	}
}

func testPing(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// baseTime is a fixed instant for created and occurred times, kept to the
// microsecond as every store holds it.
var baseTime = time.Date(2026, 1, 2, 15, 4, 5, 123456000, time.UTC)

// newAccount creates an account with its first key and returns both.
func newAccount(t *testing.T, s Store, id string) (*herald.Account, *herald.APIKey) {
	t.Helper()
	a := &herald.Account{ID: id, Name: "Account " + id, CreatedAt: baseTime}
	k := newKey(id, "first", baseTime)
	if err := s.CreateAccount(t.Context(), a, k); err != nil {
		t.Fatalf("CreateAccount(%q): %v", id, err)
	}
	return a, k
}

// quietAccount creates an account as newAccount does and switches its
// journey system events off, so that the events a case appends take
// consecutive seqs; the account's own system events (account and key
// created, settings updated) cannot be switched off. It returns the seq of
// the account's last event: the case's events follow it.
func quietAccount(t *testing.T, s Store, id string) int64 {
	t.Helper()
	newAccount(t, s, id)
	if err := s.PutSettings(t.Context(), id, quietSettings()); err != nil {
		t.Fatalf("PutSettings(%q, journey events off): %v", id, err)
	}
	return lastSeq(t, s, id)
}

// quietSettings are the default settings with every journey system event
// switched off.
func quietSettings() *herald.Settings {
	s := herald.DefaultSettings()
	s.JourneyEvents = herald.JourneyEvents{}
	return s
}

// lastSeq returns the seq of the account's newest event, 0 if it has none.
func lastSeq(t *testing.T, s herald.EventService, accountID string) int64 {
	t.Helper()
	all := allEvents(t, s, accountID, herald.EventFilter{})
	if len(all) == 0 {
		return 0
	}
	return all[len(all)-1].Seq
}

// allEvents returns every event of the account that f selects, paging
// through them by AfterSeq; f.Limit is the page size (1000 if not set).
func allEvents(t *testing.T, s herald.EventService, accountID string, f herald.EventFilter) []*herald.Event {
	t.Helper()
	if f.Limit == 0 {
		f.Limit = 1000
	}
	var out []*herald.Event
	for {
		page, err := s.FindEvents(t.Context(), accountID, f)
		if err != nil {
			t.Fatalf("FindEvents(%s, %+v): %v", accountID, f, err)
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			return out
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
}

// newKey returns a key of account that is not stored yet.
func newKey(accountID, name string, createdAt time.Time) *herald.APIKey {
	_, prefix, hash := herald.NewKeySecret()
	return &herald.APIKey{
		ID:        herald.NewRandomID("key_"),
		AccountID: accountID,
		Name:      name,
		Prefix:    prefix,
		Scopes:    []string{herald.ScopeIngest, herald.ScopeRead},
		CreatedAt: createdAt,
		Hash:      hash,
	}
}

// event builds an event as the API does: fields as a client sends them,
// parsed by herald.ParseEvent and completed at now.
func event(t *testing.T, fields map[string]any, now time.Time) *herald.Event {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return rawEvent(t, string(b), now, herald.OriginAPI)
}

// rawEvent is event for JSON written by hand, with the given origin.
func rawEvent(t *testing.T, raw string, now time.Time, origin string) *herald.Event {
	t.Helper()
	e, err := herald.ParseEvent([]byte(raw))
	if err != nil {
		t.Fatalf("ParseEvent(%s): %v", raw, err)
	}
	e.Complete(now, origin, func() string { return herald.NewRandomID("ev_") })
	return e
}

// loginEvent is a minimal event with the given id and data value: the same
// (id, value) gives the same content, a different value a conflict.
func loginEvent(t *testing.T, id, value string, now time.Time) *herald.Event {
	t.Helper()
	return event(t, map[string]any{
		"id": id, "category": "authentication", "type": "userLoggedIn",
		"occurredAt": baseTime.Format(time.RFC3339Nano),
		"data":       map[string]any{"value": value},
	}, now)
}

// appendOne stores events as one non-atomic batch and returns its results,
// failing on an error from the call itself.
func appendOne(t *testing.T, s herald.EventService, accountID string, events ...*herald.Event) []herald.AppendResult {
	t.Helper()
	b := &herald.AppendBatch{AccountID: accountID, Events: events}
	if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	if len(b.Results) != len(events) {
		t.Fatalf("AppendEvents: %d results for %d events", len(b.Results), len(events))
	}
	return b.Results
}

// wantStored checks that a result says "stored with seq".
func wantStored(t *testing.T, what string, r herald.AppendResult, seq int64, receivedAt time.Time) {
	t.Helper()
	if r.Err != nil || r.Duplicate || r.Seq != seq || !r.ReceivedAt.Equal(receivedAt) {
		t.Errorf("%s: got %s, want stored with seq %d at %s", what, fmtResult(r), seq, receivedAt.Format(time.RFC3339Nano))
	}
}

// wantDuplicate checks that a result says "duplicate of the event stored
// with seq at receivedAt".
func wantDuplicate(t *testing.T, what string, r herald.AppendResult, seq int64, receivedAt time.Time) {
	t.Helper()
	if r.Err != nil || !r.Duplicate || r.Seq != seq || !r.ReceivedAt.Equal(receivedAt) {
		t.Errorf("%s: got %s, want duplicate of seq %d received at %s", what, fmtResult(r), seq, receivedAt.Format(time.RFC3339Nano))
	}
}

// wantConflict checks that a result is an ECONFLICT error; mention, when
// set, must appear in the message the user sees.
func wantConflict(t *testing.T, what string, r herald.AppendResult, mention string) {
	t.Helper()
	if herald.ErrorCode(r.Err) != herald.ECONFLICT {
		t.Errorf("%s: got %s, want an error with code %s", what, fmtResult(r), herald.ECONFLICT)
		return
	}
	wantNoSQL(t, what, r.Err)
	if mention != "" && !strings.Contains(herald.ErrorMessage(r.Err), mention) {
		t.Errorf("%s: message %q does not name %q", what, herald.ErrorMessage(r.Err), mention)
	}
}

func fmtResult(r herald.AppendResult) string {
	return fmt.Sprintf("{Seq:%d ReceivedAt:%s Duplicate:%t Err:%v}", r.Seq, r.ReceivedAt.Format(time.RFC3339Nano), r.Duplicate, r.Err)
}

// wantCode checks that err carries code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := herald.ErrorCode(err); got != code {
		t.Errorf("%s: got error %v (code %q), want code %q", what, err, got, code)
	}
	wantNoSQL(t, what, err)
}

// wantNoSQL checks that the user-facing message of err, if it has one,
// holds no SQL or driver text.
func wantNoSQL(t *testing.T, what string, err error) {
	t.Helper()
	var he *herald.Error
	if !errors.As(err, &he) {
		return
	}
	msg := strings.ToLower(he.Message)
	for _, word := range []string{"select ", "insert ", "constraint", "sqlstate", "sqlite", "pgx"} {
		if strings.Contains(msg, word) {
			t.Errorf("%s: user-facing message holds database text (%q): %q", what, word, he.Message)
		}
	}
}

// ids returns the ids of events, in order.
func ids(events []*herald.Event) []string {
	return idsOf(events, func(e *herald.Event) string { return e.ID })
}

// idsOf returns the id of each of list, in order.
func idsOf[T any](list []T, id func(T) string) []string {
	out := make([]string, len(list))
	for i, x := range list {
		out[i] = id(x)
	}
	return out
}

// must returns got, or ends the test with err, naming the call that
// returned them (a format and its args).
func must[T any](t *testing.T, got T, err error, call string, args ...any) T {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(call, args...), err)
	}
	return got
}

// variant returns the with of a table of filter cases: with(modify) is a
// copy of base that modify changed.
func variant[F any](base F) func(modify func(f *F)) F {
	return func(modify func(f *F)) F {
		f := base
		modify(&f)
		return f
	}
}
