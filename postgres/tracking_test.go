package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/postgres"
)

var trackTime = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

// parsed builds an event as the API does, of the registered type def
// (nil for none).
func parsed(t *testing.T, def *herald.EventType, raw string) *herald.Event {
	t.Helper()
	e, err := herald.ParseEvent([]byte(raw))
	if err != nil {
		t.Fatalf("ParseEvent(%s): %v", raw, err)
	}
	e.Complete(trackTime, herald.OriginAPI, nil)
	e.Def = def
	return e
}

func newAccount(t *testing.T, s *postgres.Store, id string) {
	t.Helper()
	if err := s.CreateAccount(t.Context(), &herald.Account{ID: id, CreatedAt: trackTime}, nil); err != nil {
		t.Fatal(err)
	}
}

// persisting is a type whose events all persist to the profile.
var persisting = &herald.EventType{Category: "c", Type: "t", Persist: true, Statuses: []herald.StatusDef{}}

// Values in data that PostgreSQL cannot read as jsonb would make the json
// operators of FindProfiles fail on the profile they reach; such an event
// is refused alone. The same values are stored where nothing reads them
// as jsonb: in the body, and in a lifecycle's data.
func TestDataPostgresCannotCompare(t *testing.T) {
	t.Parallel()
	s := open(t, newSchema(t))
	newAccount(t, s, "acme")

	only := &herald.EventType{Category: "c", Type: "only", Persist: true, ProfileFields: []string{"/data/email"}}
	nul := parsed(t, persisting, `{"id":"nul","category":"c","type":"t","coreCustomerId":"C1","data":{"name":"a\u0000b"}}`)
	key := parsed(t, persisting, `{"id":"key","category":"c","type":"t","coreCustomerId":"C1","data":{"a\u0000":1}}`)
	big := parsed(t, persisting, `{"id":"big","category":"c","type":"t","coreCustomerId":"C1","data":{"n":[1e999999]}}`)
	half := parsed(t, persisting, `{"id":"half","category":"c","type":"t","coreCustomerId":"C1","data":{"s":"\ud800"}}`)
	field := parsed(t, only, `{"id":"field","category":"c","type":"only","coreCustomerId":"C1","data":{"email":"\u0000"}}`)
	// Kept: the value does not persist (not listed, no entity, a type
	// that does not persist), or it goes to a lifecycle's data.
	notListed := parsed(t, only, `{"id":"notListed","category":"c","type":"only","coreCustomerId":"C1","data":{"email":"e@x","n":1e999999}}`)
	noEntity := parsed(t, persisting, `{"id":"noEntity","category":"c","type":"t","data":{"name":"\u0000"}}`)
	unregistered := parsed(t, nil, `{"id":"unregistered","category":"c","type":"u","coreCustomerId":"C1","eventLifecycleId":"L1","data":{"name":"\u0000","n":1e999999,"s":"\ud800"}}`)

	b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{nul, key, big, half, field, notListed, noEntity, unregistered}}
	if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	for i, pointer := range []string{"/data", "/data", "/data", "/data", "/data/email"} {
		r := b.Results[i]
		var he *herald.Error
		if herald.ErrorCode(r.Err) != herald.EINVALID || !errorsAs(r.Err, &he) || he.Fields[0].Pointer != pointer || r.Seq != 0 {
			t.Errorf("event %s: result %+v, want EINVALID naming %s", b.Events[i].ID, r, pointer)
		}
	}
	// Seq 1 is the system event account created; notListed begins the
	// profile and the visit of C1, whose system events take seqs 3 and 4.
	for i, seq := range []int64{2, 5, 6} {
		if r := b.Results[5+i]; r.Err != nil || r.Seq != seq {
			t.Errorf("event %s: result %+v, want stored with seq %d", b.Events[5+i].ID, r, seq)
		}
	}

	l, err := s.FindLifecycle(t.Context(), "acme", "L1")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"n":1e999999,"name":"\u0000","s":"\ud800"}`; string(l.Data) != want {
		t.Errorf("lifecycle data = %s, want %s", l.Data, want)
	}
	p, err := s.FindProfile(t.Context(), "acme", "C1")
	if err != nil {
		t.Fatal(err)
	}
	if p.EventCount != 2 || len(p.Attributes) != 1 || string(p.Attributes["email"].Value) != `"e@x"` {
		t.Errorf("profile = %+v, want 2 events and email e@x", p)
	}
	// Every profile can be searched by attribute, and such values find
	// nothing rather than fail.
	for _, v := range []string{`"e@x"`, `"\u0000"`, `1e999999`} {
		list, err := s.FindProfiles(t.Context(), "acme", herald.ProfileFilter{Attribute: "email", Value: json.RawMessage(v), Limit: 10})
		if want := map[bool]int{true: 1, false: 0}[v == `"e@x"`]; err != nil || len(list) != want {
			t.Errorf("FindProfiles(email = %s) = %d profiles, %v; want %d", v, len(list), err, want)
		}
	}
}

func errorsAs(err error, target **herald.Error) bool {
	return errors.As(err, target) && len((*target).Fields) > 0
}

// The schema is served as the account wrote it: json keeps the text,
// where jsonb would reorder its keys.
func TestSchemaKeptAsWritten(t *testing.T) {
	t.Parallel()
	s := open(t, newSchema(t))
	newAccount(t, s, "acme")
	schema := `{"type":"object","properties":{"zeta":{"type":"string"},"a":{"type":"number","maximum":1.50}},"$schema":"https://json-schema.org/draft/2020-12/schema"}`
	et := &herald.EventType{AccountID: "acme", Category: "c", Type: "t", Schema: json.RawMessage(schema), Statuses: []herald.StatusDef{}}
	if _, err := s.PutEventType(t.Context(), et); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindEventType(t.Context(), "acme", "c", "t")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Schema) != schema {
		t.Errorf("schema = %s, want %s", got.Schema, schema)
	}
	bad := &herald.EventType{AccountID: "acme", Category: "c", Type: "u", Schema: json.RawMessage("{\"title\":\"\xff\"}")}
	if _, err := s.PutEventType(t.Context(), bad); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("PutEventType(schema not UTF-8): %v, want EINVALID", err)
	}
}

// An erasure takes the account's lock: an append of the entity's events
// is wholly before it (and erased) or wholly after it. Each event is then
// redacted once, by one erasure, and the profile counts exactly the events
// appended since the last erasure. Also under SERIALIZABLE as the
// server's default, where a transaction that did not ask for READ
// COMMITTED would read from before the lock.
func TestEraseWhileAppending(t *testing.T) {
	t.Parallel()
	for _, isolation := range []string{"", "serializable"} {
		t.Run("isolation="+isolation, func(t *testing.T) {
			t.Parallel()
			dbURL := newSchema(t)
			if isolation != "" {
				sep := "&"
				if !strings.Contains(dbURL, "://") {
					sep = " " // a key=value connection string
				}
				dbURL += sep + "default_transaction_isolation=" + isolation
			}
			testEraseWhileAppending(t, dbURL)
		})
	}
}

func testEraseWhileAppending(t *testing.T, dbURL string) {
	nodes := []*postgres.Store{open(t, dbURL), open(t, dbURL)}
	newAccount(t, nodes[0], "acme")

	const (
		writers = 4
		calls   = 40
	)
	var events [writers][calls][]*herald.Event
	for w := range writers {
		for c := range calls {
			for i := range 3 {
				events[w][c] = append(events[w][c], parsed(t, persisting, fmt.Sprintf(
					`{"id":"w%d-c%d-%d","category":"c","type":"t","coreCustomerId":"C1","eventLifecycleId":"L%d-%d","data":{"n":%d}}`,
					w, c, i, w, c, i)))
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errs     = make([]error, writers+1)
		erased   int64
		erasures int
		done     = make(chan struct{})
	)
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				b := &herald.AppendBatch{AccountID: "acme", Events: events[w][c]}
				if err := nodes[w%2].AppendEvents(ctx, []*herald.AppendBatch{b}); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	// Erase, on either node, until the writers are done.
erase:
	for {
		select {
		case <-done:
			break erase
		default:
		}
		n, err := nodes[erasures%2].EraseProfile(ctx, "acme", "C1")
		if err != nil && herald.ErrorCode(err) != herald.ENOTFOUND {
			errs[writers] = err
			cancel()
			<-done
			break
		}
		erased += n
		erasures++
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}

	// And after the last erasure, for sure.
	var last []*herald.Event
	for i := range 3 {
		last = append(last, parsed(t, persisting, fmt.Sprintf(
			`{"id":"last-%d","category":"c","type":"t","coreCustomerId":"C1","eventLifecycleId":"L-last","data":{"n":%d}}`, i, i)))
	}
	if err := nodes[0].AppendEvents(t.Context(), []*herald.AppendBatch{{AccountID: "acme", Events: last}}); err != nil {
		t.Fatal(err)
	}

	list, err := nodes[0].FindEvents(t.Context(), "acme", herald.EventFilter{EntityID: "C1", Limit: 1000})
	if want := writers*calls*3 + len(last); err != nil || len(list) != want {
		t.Fatalf("FindEvents = %d events, %v; want %d", len(list), err, want)
	}
	var (
		redacted, kept int64
		lastRedacted   int64
	)
	for _, e := range list {
		switch {
		case e.Redacted && e.Data == nil:
			redacted++
			lastRedacted = e.Seq
		case e.Redacted:
			t.Errorf("event %s is redacted but has data %s", e.ID, e.Data)
		default:
			kept++
			if e.Seq < lastRedacted {
				t.Errorf("event %s (seq %d) was kept, but event seq %d before it was redacted", e.ID, e.Seq, lastRedacted)
			}
		}
	}
	if redacted != erased {
		t.Errorf("%d events are redacted; the %d erasures said %d", redacted, erasures, erased)
	}
	p, err := nodes[1].FindProfile(t.Context(), "acme", "C1")
	switch {
	case kept == 0 && herald.ErrorCode(err) != herald.ENOTFOUND:
		t.Errorf("no event kept, but FindProfile = %+v, %v", p, err)
	case kept > 0 && (err != nil || p.EventCount != kept || p.FirstSeq <= lastRedacted):
		t.Errorf("FindProfile = %+v, %v; want %d events, all after seq %d", p, err, kept, lastRedacted)
	}
	// Lifecycles of redacted events lost their data; the others kept it.
	for _, e := range list {
		l, err := nodes[0].FindLifecycle(t.Context(), "acme", e.EventLifecycleID)
		if err != nil {
			t.Fatal(err)
		}
		if e.Redacted != l.Redacted || e.Redacted != (l.Data == nil) {
			t.Errorf("event %s (redacted %t): lifecycle %s redacted %t, data %s", e.ID, e.Redacted, l.ID, l.Redacted, l.Data)
		}
	}
	t.Logf("%d erasures redacted %d events; %d kept", erasures, redacted, kept)
}

// Events stored before migration 0002 get their entity from the columns
// and, for agentType, from the body, whatever else the body holds.
func TestMigrateEntityID(t *testing.T) {
	t.Parallel()
	dbURL := newSchema(t)
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	init, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), string(init)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO schema_migrations (version) VALUES ('0001_init');
		INSERT INTO accounts (id, created_at) VALUES ('acme', now())`); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		raw, entity string
	}{
		{`{"id":"cust","category":"c","type":"t","coreCustomerId":"C1","agentId":"A1","agentType":"customer"}`, "C1"},
		{`{"id":"agent","category":"c","type":"t","agentId":"A1","agentType":"customer"}`, "A1"},
		{`{"id":"case","category":"c","type":"t","agentId":"A2","agentType":"CUSTOMER"}`, "A2"},
		{`{"id":"longs","category":"c","type":"t","agentId":"A3","agentType":"cuſtomer"}`, "A3"},
		{`{"id":"employee","category":"c","type":"t","agentId":"A4","agentType":"employee"}`, ""},
		{`{"id":"untyped","category":"c","type":"t","agentId":"A5"}`, ""},
		{`{"id":"inData","category":"c","type":"t","agentId":"A6","data":{"agentType":"customer"}}`, ""},
		{`{"id":"nulData","category":"c","type":"t","agentId":"A7","agentType":"Customer","data":{"x":"\u0000"}}`, "A7"},
		{`{"id":"quoted","category":"c","type":"t","agentId":"A8","agentType":"customer\""}`, ""},
		{`{"id":"none","category":"c","type":"t"}`, ""},
		{`{"id":"lc","category":"c","type":"t","coreCustomerId":"C1","eventLifecycleId":"L1","eventStatus":"s"}`, "C1"},
	}
	for i, c := range cases {
		e := parsed(t, nil, c.raw)
		e.Seq = int64(i + 1)
		if e.ID == "nulData" {
			e.Data = []byte("{\"x\":\"\\u0000 \xff\"}") // not even UTF-8
		}
		body, err := herald.MarshalEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(t.Context(), `INSERT INTO events (account_id, seq, id, category, type, core_customer_id,
			agent_id, event_lifecycle_id, origin, occurred_at, received_at, hash, body)
			VALUES ('acme', $1, $2, 'c', 't', NULLIF($3, ''), NULLIF($4, ''), NULLIF($8, ''), 'api', $5, $5, $6, $7)`,
			e.Seq, e.ID, e.CoreCustomerID, e.AgentID, e.OccurredAt, e.Hash, body, e.EventLifecycleID); err != nil {
			t.Fatal(err)
		}
		if got := e.EntityID(); got != c.entity {
			t.Fatalf("case %s: EntityID() = %q, the case says %q", e.ID, got, c.entity)
		}
	}

	s := open(t, dbURL)
	for _, c := range cases {
		var id string
		if err := json.Unmarshal([]byte(c.raw), &struct{ ID *string }{&id}); err != nil {
			t.Fatal(err)
		}
		var entity *string
		if err := conn.QueryRow(t.Context(), `SELECT entity_id FROM events WHERE id = $1`, id).Scan(&entity); err != nil {
			t.Fatal(err)
		}
		if got := ptrString(entity); got != c.entity {
			t.Errorf("event %s: entity_id = %q, want %q", id, got, c.entity)
		}
	}
	list, err := s.FindEvents(t.Context(), "acme", herald.EventFilter{EntityID: "A1", Limit: 10})
	if err != nil || !slices.Equal(eventIDs(list), []string{"agent"}) {
		t.Errorf("FindEvents(entity A1) = %v, %v; want [agent]", eventIDs(list), err)
	}

	// The migration also built the profiles and lifecycles of those events.
	for id, count := range map[string]int64{"C1": 2, "A1": 1, "A2": 1, "A7": 1} {
		p, err := s.FindProfile(t.Context(), "acme", id)
		if err != nil || p.EventCount != count {
			t.Errorf("profile %s after migration: %+v, %v; want %d events", id, p, err, count)
		}
	}
	if l, err := s.FindLifecycle(t.Context(), "acme", "L1"); err != nil || l.Status != "s" || l.EventCount != 1 || l.EntityID != "C1" {
		t.Errorf("lifecycle L1 after migration: %+v, %v", l, err)
	}
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func eventIDs(events []*herald.Event) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

// When a write of the second round trip fails, nothing is stored: not the
// events, nor their lifecycles and profiles, and the events are as they
// were given. A trigger makes the last write fail, as a full disk would.
func TestFailedWriteStoresNothing(t *testing.T) {
	t.Parallel()
	dbURL := newSchema(t)
	s := open(t, dbURL)
	newAccount(t, s, "acme")
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.id = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_boom BEFORE INSERT OR UPDATE ON profiles FOR EACH ROW EXECUTE FUNCTION refuse_boom()`); err != nil {
		t.Fatal(err)
	}

	ok := parsed(t, persisting, `{"id":"ok","category":"c","type":"t","coreCustomerId":"fine","eventLifecycleId":"L1","data":{"a":1}}`)
	boom := parsed(t, persisting, `{"id":"boom","category":"c","type":"t","coreCustomerId":"boom","eventLifecycleId":"L1","data":{"b":2}}`)
	b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{ok, boom}}
	if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err == nil {
		t.Fatal("AppendEvents: no error, want the trigger's")
	}
	if b.Results != nil || ok.Seq != 0 || ok.Body != nil || boom.Seq != 0 || boom.Body != nil {
		t.Errorf("after the error: results %v, seqs %d and %d, bodies %q and %q; want all unset", b.Results, ok.Seq, boom.Seq, ok.Body, boom.Body)
	}
	if _, err := s.FindEventByID(t.Context(), "acme", "ok"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("FindEventByID(ok) = %v, want ENOTFOUND", err)
	}
	if _, err := s.FindLifecycle(t.Context(), "acme", "L1"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("FindLifecycle(L1) = %v, want ENOTFOUND", err)
	}
	if _, err := s.FindProfile(t.Context(), "acme", "fine"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("FindProfile(fine) = %v, want ENOTFOUND", err)
	}

	// The same events, less the refused one, go in as if nothing happened.
	b = &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{ok}}
	// Seq 1 is the system event account created.
	if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil || b.Results[0].Seq != 2 {
		t.Fatalf("AppendEvents again: %v, results %+v; want seq 2", err, b.Results)
	}
	l, err := s.FindLifecycle(t.Context(), "acme", "L1")
	if err != nil || l.EventCount != 1 || string(l.Data) != `{"a":1}` {
		t.Errorf("FindLifecycle(L1) = %+v, %v; want one event and data {\"a\":1}", l, err)
	}
}
