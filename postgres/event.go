package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald"
)

// The statements of AppendEvents. See doc.go for why they run in this order.
const (
	// lockAccountsSQL locks the rows of the accounts written to, and reads
	// what the append needs of them. Rows are locked as they leave the
	// sort, so in id order: two calls that share accounts take them in the
	// same order and cannot deadlock. FOR NO KEY UPDATE conflicts with
	// itself, as FOR UPDATE would, but not with the KEY SHARE lock that
	// inserting an API key takes on its account.
	lockAccountsSQL = `SELECT id, last_seq, audit_head, settings FROM accounts
		WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`

	// findStoredSQL finds which of the ids are already taken. It runs after
	// the lock, in its own statement, so its snapshot sees every event that
	// an earlier holder of the lock committed. So do the lookups that
	// follow, for lifecycles, profiles, sessions and visits.
	// Each looks its keys up one by one, through the primary key: a
	// LATERAL join cannot become a hash join over the whole table, which
	// the planner picks for an IN list once a table is small enough, and
	// which would then grow with the table.
	findStoredSQL = `SELECT e.account_id, e.id, e.seq, e.received_at, e.hash, e.session_id
		FROM unnest($1::text[], $2::text[]) AS u (account_id, id)
		CROSS JOIN LATERAL (SELECT account_id, id, seq, received_at, hash, COALESCE(session_id, '') AS session_id
			FROM events WHERE events.account_id = u.account_id AND events.id = u.id) AS e`

	findLifecyclesSQL = `SELECT l.* FROM unnest($1::text[], $2::text[]) AS u (account_id, id)
		CROSS JOIN LATERAL (SELECT ` + lifecycleColumns + ` FROM lifecycles
			WHERE lifecycles.account_id = u.account_id AND lifecycles.id = u.id) AS l`

	findProfilesSQL = `SELECT p.* FROM unnest($1::text[], $2::text[]) AS u (account_id, id)
		CROSS JOIN LATERAL (SELECT ` + profileColumns + ` FROM profiles
			WHERE profiles.account_id = u.account_id AND profiles.id = u.id) AS p`

	insertEventsSQL = `INSERT INTO events (account_id, seq, id, category, type, event_status,
		event_lifecycle_id, core_customer_id, agent_id, session_id, primary_id, origin,
		occurred_at, received_at, hash, body, entity_id)
	SELECT account_id, seq, id, category, type, NULLIF(event_status, ''),
		NULLIF(event_lifecycle_id, ''), NULLIF(core_customer_id, ''), NULLIF(agent_id, ''),
		NULLIF(session_id, ''), NULLIF(primary_id, ''), origin,
		occurred_at, received_at, hash, body, NULLIF(entity_id, '')
	FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
		$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
		$13::timestamptz[], $14::timestamptz[], $15::text[], $16::bytea[], $17::text[])
		AS u (account_id, seq, id, category, type, event_status,
		event_lifecycle_id, core_customer_id, agent_id, session_id, primary_id, origin,
		occurred_at, received_at, hash, body, entity_id)`

	// updateAccountsSQL moves last_seq and the head of the audit chain; a
	// NULL leaves the column as it was.
	updateAccountsSQL = `UPDATE accounts SET last_seq = COALESCE(u.last_seq, accounts.last_seq),
		audit_head = COALESCE(u.audit_head, accounts.audit_head)
		FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u (id, last_seq, audit_head)
		WHERE accounts.id = u.id`

	// notifySQL tells the servers that listen (Store.Listen) which accounts
	// stored events: PostgreSQL sends the notifications when, and only if,
	// the transaction commits.
	notifySQL = `SELECT pg_notify('` + EventsChannel + `', a) FROM unnest($1::text[]) AS a`
)

// AppendEvents stores the events of all batches, and the lifecycles,
// profiles, sessions and visits they change, with the system events they
// cause, in one transaction. See herald.EventService for the contract,
// herald.PlanAppend for the rule, and doc.go for how seqs stay in commit
// order.
func (s *Store) AppendEvents(ctx context.Context, batches []*herald.AppendBatch) error {
	for bi, b := range batches {
		if b == nil {
			return fmt.Errorf("append events: batch %d is nil", bi)
		}
		if len(b.Events) > 0 && !textOK(b.AccountID) {
			return herald.Errorf(herald.ENOTFOUND, "account %q not found", b.AccountID)
		}
		for i, e := range b.Events {
			if e == nil || e.ID == "" || e.Hash == "" {
				return fmt.Errorf("append events: batch %d, event %d is incomplete: id and hash must be set", bi, i)
			}
		}
	}
	keys := herald.KeysOf(batches)
	if len(keys.Accounts) == 0 {
		for _, b := range batches {
			b.Results = []herald.AppendResult{}
		}
		return nil
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	defer conn.Release()

	_, err = runAppend(ctx, conn, keys, func(st *herald.AppendState) (*herald.AppendPlan, error) {
		return herald.PlanAppend(batches, st, checkEvent)
	})
	if err != nil {
		rollback(conn)
		// Nothing was stored: undo what PlanAppend and the encoding did.
		for _, b := range batches {
			b.Results = nil
			for _, e := range b.Events {
				e.Seq, e.Body = 0, nil
			}
		}
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// runAppend runs on conn a transaction of its own that reads the state of
// keys under the accounts' locks, lets decide plan the writes, writes them
// and commits: AppendEvents, and the sweep of ExpireJourneys. It takes two
// round trips. On error the caller rolls back.
func runAppend(ctx context.Context, conn *pgxpool.Conn, keys herald.AppendKeys,
	decide func(*herald.AppendState) (*herald.AppendPlan, error)) (*herald.AppendPlan, error) {
	// Round trip 1: begin, lock the accounts, read what the plan needs.
	// Pipelined, the statements still run one after the other: the reads
	// start only once the locks are held.
	b := &pgx.Batch{}
	// READ COMMITTED whatever the server's default: each read must take a
	// snapshot of its own, after the lock (see doc.go).
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	// Plan each statement for the tables as they are now. A plan cached
	// while a table was small (every database starts empty) scans it whole
	// for each key looked up, and stays cached as the table grows: seen
	// under herald bench on a fresh database, where a commit's lookups came
	// to take 100 ms. Planning anew costs well under a millisecond.
	b.Queue("SET LOCAL plan_cache_mode = force_custom_plan")
	st := queueReads(b, keys)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}

	plan, err := decide(&st.AppendState)
	if err != nil {
		return nil, err
	}
	b = &pgx.Batch{}
	if err := queueWrites(b, plan, st); err != nil {
		return nil, err
	}
	b.Queue("COMMIT")

	// Round trip 2: write, move last_seq, commit. If a statement
	// fails, the server skips the rest, COMMIT included, and the caller
	// rolls back. The caller's cancellation no longer applies: cancelling
	// a COMMIT in flight would leave its outcome unknown, and an error
	// must mean that nothing was stored.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return plan, nil
}

// appendState is what the first round trip of an append read.
type appendState struct {
	herald.AppendState
	// Which lifecycles and profiles exist: the plan adds the others.
	hadLifecycle, hadProfile map[herald.Ref]bool
}

// queueReads queues into b the lock of the accounts of keys and the
// lookups of the rest, which fill the state as their results come in.
// A lookup with no keys is not sent.
func queueReads(b *pgx.Batch, keys herald.AppendKeys) *appendState {
	st := &appendState{
		AppendState: herald.AppendState{
			LastSeq:    make(map[string]int64, len(keys.Accounts)),
			Stored:     make(map[herald.Ref]herald.StoredEvent, len(keys.Events)),
			Lifecycles: make(map[herald.Ref]*herald.Lifecycle, len(keys.Lifecycles)),
			Profiles:   make(map[herald.Ref]*herald.Profile, len(keys.Profiles)),
			Sessions:   make(map[herald.Ref]*herald.Session, len(keys.Sessions)),
			Visits:     make(map[herald.Ref]*herald.Visit, len(keys.Visits)),
			Settings:   make(map[string]*herald.Settings, len(keys.Accounts)),
			AuditHead:  make(map[string]string, len(keys.Accounts)),
		},
		hadLifecycle: map[herald.Ref]bool{},
		hadProfile:   map[herald.Ref]bool{},
	}
	b.Queue(lockAccountsSQL, keys.Accounts).Query(func(rows pgx.Rows) error {
		var (
			id       string
			seq      int64
			head     *string
			settings []byte
		)
		_, err := pgx.ForEachRow(rows, []any{&id, &seq, &head, &settings}, func() error {
			st.LastSeq[id] = seq
			if head != nil {
				st.AuditHead[id] = *head
			}
			if settings != nil {
				decoded, err := herald.DecodeSettings(settings)
				if err != nil {
					return fmt.Errorf("decode settings of %s: %w", id, err)
				}
				st.Settings[id] = decoded
			}
			return nil
		})
		return err
	})
	if accounts, ids := splitRefs(keys.Events); len(ids) > 0 {
		b.Queue(findStoredSQL, accounts, ids).Query(func(rows pgx.Rows) error {
			var (
				r  herald.Ref
				se herald.StoredEvent
			)
			_, err := pgx.ForEachRow(rows, []any{&r.AccountID, &r.ID, &se.Seq, &se.ReceivedAt, &se.Hash, &se.SessionID}, func() error {
				se.ReceivedAt = se.ReceivedAt.UTC()
				st.Stored[r] = se
				return nil
			})
			return err
		})
	}
	if accounts, ids := splitRefs(keys.Lifecycles); len(ids) > 0 {
		b.Queue(findLifecyclesSQL, accounts, ids).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				l, err := scanLifecycle(rows)
				if err != nil {
					return err
				}
				r := herald.Ref{AccountID: l.AccountID, ID: l.ID}
				st.Lifecycles[r], st.hadLifecycle[r] = l, true
			}
			return rows.Err()
		})
	}
	if accounts, ids := splitRefs(keys.Profiles); len(ids) > 0 {
		b.Queue(findProfilesSQL, accounts, ids).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				p, err := scanProfile(rows)
				if err != nil {
					return err
				}
				r := herald.Ref{AccountID: p.AccountID, ID: p.ID}
				st.Profiles[r], st.hadProfile[r] = p, true
			}
			return rows.Err()
		})
	}
	if accounts, ids := splitRefs(keys.Sessions); len(ids) > 0 {
		b.Queue(findSessionsSQL, accounts, ids).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				se, err := scanSession(rows)
				if err != nil {
					return err
				}
				st.Sessions[herald.Ref{AccountID: se.AccountID, ID: se.ID}] = se
			}
			return rows.Err()
		})
	}
	if accounts, ids := splitRefs(keys.Visits); len(ids) > 0 {
		b.Queue(findOpenVisitsSQL, accounts, ids).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				v, err := scanVisit(rows)
				if err != nil {
					return err
				}
				// Keyed by entity: the visit an entity's next event joins.
				st.Visits[herald.Ref{AccountID: v.AccountID, ID: v.EntityID}] = v
			}
			return rows.Err()
		})
	}
	return st
}

// queueWrites encodes what plan writes and queues one statement for each
// kind of write, over arrays of rows.
func queueWrites(b *pgx.Batch, plan *herald.AppendPlan, st *appendState) error {
	if err := queueEvents(b, plan.Events); err != nil {
		return err
	}
	if err := queueLifecycles(b, plan.Lifecycles, st.hadLifecycle); err != nil {
		return err
	}
	if err := queueProfiles(b, plan.Profiles, st.hadProfile); err != nil {
		return err
	}
	queueSessions(b, plan.Sessions)
	queueVisits(b, plan.Visits)
	accounts := slices.Sorted(maps.Keys(plan.LastSeq))
	if len(accounts) > 0 {
		// One notification per account that stored events (PostgreSQL
		// also folds those a transaction repeats, as a change that calls
		// recordChange twice would).
		b.Queue(notifySQL, accounts)
	}
	for a := range plan.AuditHead {
		if _, ok := plan.LastSeq[a]; !ok {
			accounts = append(accounts, a)
		}
	}
	if len(accounts) > 0 {
		seqs, heads := make([]pgtype.Int8, len(accounts)), make([]pgtype.Text, len(accounts))
		for i, a := range accounts {
			seq, ok := plan.LastSeq[a]
			seqs[i] = pgtype.Int8{Int64: seq, Valid: ok}
			head, ok := plan.AuditHead[a]
			heads[i] = pgtype.Text{String: head, Valid: ok && head != ""}
		}
		b.Queue(updateAccountsSQL, accounts, seqs, heads)
	}
	return nil
}

// lockAccount takes, in tx, the lock that AppendEvents takes on the
// account, and reads what appending to it needs: an API change takes it
// before anything else, so that its system events are numbered and
// chained like any append, and so that it takes its locks in the order
// appends do. ENOTFOUND if there is no such account.
func lockAccount(ctx context.Context, tx pgx.Tx, accountID string) (*appendState, error) {
	b := &pgx.Batch{}
	st := queueReads(b, herald.AppendKeys{Accounts: []string{accountID}})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("lock account %s: %w", accountID, err)
	}
	if _, ok := st.LastSeq[accountID]; !ok {
		return nil, herald.Errorf(herald.ENOTFOUND, "account %q not found", accountID)
	}
	return st, nil
}

// recordChange appends, in tx, the system events of an API change to the
// account that lockAccount locked in tx, by the rule of AppendEvents
// (herald.PlanAppend), so that they take the account's next seqs and
// extend its audit chain. The caller commits.
func recordChange(ctx context.Context, tx pgx.Tx, st *appendState, accountID string, events ...*herald.Event) error {
	batch := &herald.AppendBatch{AccountID: accountID, Events: events, Atomic: true, By: herald.ActorFrom(ctx)}
	plan, err := herald.PlanAppend([]*herald.AppendBatch{batch}, &st.AppendState, checkEvent)
	if err != nil {
		return fmt.Errorf("record the change: %w", err)
	}
	for i, r := range batch.Results {
		if r.Err != nil {
			return fmt.Errorf("record the change: system event %s %s: %w", events[i].Category, events[i].Type, r.Err)
		}
	}
	b := &pgx.Batch{}
	if err := queueWrites(b, plan, st); err != nil {
		return fmt.Errorf("record the change: %w", err)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record the change: %w", err)
	}
	return nil
}

// commitTimeout bounds the last round trip of AppendEvents, which the
// caller cannot cancel.
const commitTimeout = 30 * time.Second

// splitRefs returns the account ids and ids of refs, as the arrays that
// the lookups unnest, less those PostgreSQL's text cannot hold: no row has
// them, and checkEvent refuses the events that carry them.
func splitRefs(refs []herald.Ref) (accounts, ids []string) {
	accounts, ids = make([]string, 0, len(refs)), make([]string, 0, len(refs))
	for _, r := range refs {
		if textOK(r.AccountID) && textOK(r.ID) {
			accounts, ids = append(accounts, r.AccountID), append(ids, r.ID)
		}
	}
	return accounts, ids
}

// queueEvents encodes the bodies of the events to insert, which have
// their seqs now, and queues one statement that inserts them all.
func queueEvents(b *pgx.Batch, events []*herald.Event) error {
	n := len(events)
	if n == 0 {
		return nil
	}
	var (
		cAccount    = make([]string, n)
		cSeq        = make([]int64, n)
		cID         = make([]string, n)
		cCategory   = make([]string, n)
		cType       = make([]string, n)
		cStatus     = make([]string, n)
		cLifecycle  = make([]string, n)
		cCustomer   = make([]string, n)
		cAgent      = make([]string, n)
		cSession    = make([]string, n)
		cPrimary    = make([]string, n)
		cOrigin     = make([]string, n)
		cOccurredAt = make([]time.Time, n)
		cReceivedAt = make([]time.Time, n)
		cHash       = make([]string, n)
		cBody       = make([][]byte, n)
		cEntity     = make([]string, n)
	)
	for i, e := range events {
		body, err := herald.MarshalEvent(e)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", e.ID, err)
		}
		e.Body = body
		cAccount[i], cSeq[i], cID[i] = e.AccountID, e.Seq, e.ID
		cCategory[i], cType[i], cStatus[i], cLifecycle[i] = e.Category, e.Type, e.EventStatus, e.EventLifecycleID
		cCustomer[i], cAgent[i], cSession[i], cPrimary[i] = e.CoreCustomerID, e.AgentID, e.SessionID, e.PrimaryID
		cOrigin[i], cOccurredAt[i], cReceivedAt[i] = e.Origin, e.OccurredAt, e.ReceivedAt
		cHash[i], cBody[i], cEntity[i] = e.Hash, body, e.EntityID()
	}
	b.Queue(insertEventsSQL, cAccount, cSeq, cID, cCategory, cType, cStatus, cLifecycle,
		cCustomer, cAgent, cSession, cPrimary, cOrigin, cOccurredAt, cReceivedAt, cHash, cBody, cEntity)
	return nil
}

// checkEvent is the check PlanAppend runs on each event: it refuses, for
// that event alone, what PostgreSQL cannot hold, which would otherwise
// fail the whole transaction and with it the other requests that share
// the commit.
func checkEvent(e *herald.Event) error {
	if err := checkText(e); err != nil {
		return err
	}
	entity := e.EntityID()
	if len(e.Data) == 0 || e.EventLifecycleID == "" && entity == "" {
		return nil // data goes to the body alone, which is bytes
	}
	// Lifecycle data and profile attributes are json, which is text.
	if !utf8.Valid(e.Data) {
		return herald.FieldErrorf("/data", "must be valid UTF-8")
	}
	if entity != "" && e.Def.Persists(e.EventStatus) {
		return checkAttributes(e)
	}
	return nil
}

// checkText returns an EINVALID error if a field stored in a text column
// holds what PostgreSQL's text refuses: the NUL character or invalid UTF-8.
// Such an event would otherwise fail the whole transaction, and with it
// the other requests that share the commit.
func checkText(e *herald.Event) error {
	return checkFields("/id", e.ID, "/category", e.Category, "/type", e.Type,
		"/eventStatus", e.EventStatus, "/eventLifecycleId", e.EventLifecycleID,
		"/coreCustomerId", e.CoreCustomerID, "/agentId", e.AgentID,
		"/sessionId", e.SessionID, "/primaryId", e.PrimaryID,
		"/origin", e.Origin, "/hash", e.Hash)
}

// textOK reports whether PostgreSQL can store s as text.
func textOK(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

// rollback ends a transaction left open on conn by a failed call. The
// call's context may be done, so it gets its own. Should rollback fail,
// the pool discards the connection when it is released.
func rollback(conn *pgxpool.Conn) {
	if conn.Conn().IsClosed() || conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, "ROLLBACK")
}

// FindEventByID returns the account's event id, or ENOTFOUND.
func (s *Store) FindEventByID(ctx context.Context, accountID, id string) (*herald.Event, error) {
	notFound := herald.Errorf(herald.ENOTFOUND, "event %q not found", id)
	if !textOK(accountID) || !textOK(id) {
		return nil, notFound // could not have been stored
	}
	var (
		body []byte
		hash string
	)
	err := s.pool.QueryRow(ctx, `SELECT body, hash FROM events WHERE account_id = $1 AND id = $2`, accountID, id).
		Scan(&body, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("find event %s: %w", id, err)
	}
	e, err := decodeEvent(accountID, body, hash)
	if err != nil {
		return nil, fmt.Errorf("find event %s: %w", id, err)
	}
	return e, nil
}

// FindEvents returns up to f.Limit of the account's events that match f,
// ordered by seq.
func (s *Store) FindEvents(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
	if f.Limit <= 0 {
		return nil, herald.Errorf(herald.EINVALID, "limit must be positive")
	}
	q := newQuery(`SELECT seq, id, body, hash FROM events WHERE account_id = $1`, accountID)
	none := !textOK(accountID) // a value no stored event can have
	for _, c := range []struct{ column, value string }{
		{"category", f.Category}, {"type", f.Type}, {"event_status", f.EventStatus},
		{"event_lifecycle_id", f.EventLifecycleID}, {"core_customer_id", f.CoreCustomerID},
		// Implied by core_customer_id, and answered by an index (see
		// migration 0002).
		{"entity_id", f.CoreCustomerID},
		{"entity_id", f.EntityID}, {"agent_id", f.AgentID}, {"session_id", f.SessionID},
		{"primary_id", f.PrimaryID}, {"origin", f.Origin},
	} {
		if c.value != "" {
			none = none || !textOK(c.value)
			q.where(c.column+" =", c.value)
		}
	}
	if len(f.Types) > 0 {
		types := textOnly(f.Types)
		none = none || len(types) == 0
		q.and("type = ANY(" + q.param(types) + ")")
	}
	if len(f.Sources) > 0 {
		none = none || !whereSources(q, f.Sources)
	}
	if none {
		return []*herald.Event{}, nil
	}
	if !f.OccurredAfter.IsZero() {
		q.where("occurred_at >=", f.OccurredAfter)
	}
	if !f.OccurredBefore.IsZero() {
		q.where("occurred_at <", f.OccurredBefore)
	}
	if f.AfterSeq > 0 {
		q.where("seq >", f.AfterSeq)
	}
	q.orderLimit("seq", f.Limit)

	rows, err := s.pool.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, fmt.Errorf("find events: %w", err)
	}
	events := make([]*herald.Event, 0, min(f.Limit, 128))
	var (
		seq      int64
		id, hash string
		body     []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&seq, &id, &body, &hash}, func() error {
		if f.BodiesOnly {
			events = append(events, &herald.Event{Seq: seq, ID: id, AccountID: accountID, Body: body})
			return nil
		}
		e, err := decodeEvent(accountID, body, hash)
		if err != nil {
			return err
		}
		events = append(events, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find events: %w", err)
	}
	return events, nil
}

// whereSources adds the condition of EventFilter.Sources: any of the
// categories, each with any of its primary ids, or with any primary id
// when its list is empty. It reports false when no stored event can match.
func whereSources(q *query, sources map[string][]string) bool {
	var groups []string
	for _, category := range slices.Sorted(maps.Keys(sources)) {
		if !textOK(category) {
			continue
		}
		ids := sources[category]
		if len(ids) == 0 {
			groups = append(groups, "category = "+q.param(category))
			continue
		}
		if ids = textOnly(ids); len(ids) > 0 {
			groups = append(groups, "(category = "+q.param(category)+" AND primary_id = ANY("+q.param(ids)+"))")
		}
	}
	if len(groups) == 0 {
		return false
	}
	q.and("(" + strings.Join(groups, " OR ") + ")")
	return true
}

// textOnly returns the values of list that a text column can hold: the
// others match nothing.
func textOnly(list []string) []string {
	kept := make([]string, 0, len(list))
	for _, v := range list {
		if textOK(v) {
			kept = append(kept, v)
		}
	}
	return kept
}

// decodeEvent returns the event stored as body.
func decodeEvent(accountID string, body []byte, hash string) (*herald.Event, error) {
	e := &herald.Event{}
	if err := json.Unmarshal(body, e); err != nil {
		return nil, fmt.Errorf("decode stored event: %w", err)
	}
	e.AccountID, e.Hash, e.Body = accountID, hash, body
	return e, nil
}
