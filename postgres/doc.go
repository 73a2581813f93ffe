// Package postgres stores Herald's accounts, API keys, events, event types,
// settings, lifecycles, entity profiles, sessions, visits, subscriptions
// and the state of their webhook deliveries, workflows and their runs, and
// work jobs in PostgreSQL, through pgx. Several Herald processes may share
// one database.
//
// Open applies the embedded migrations (migrations/*.sql) in one
// transaction that holds a PostgreSQL advisory lock, and records each in
// schema_migrations: processes that start together wait for one another,
// and each migration runs once. The tables live in the first schema of the
// connection's search_path, so one database can hold several Heralds (the
// tests give each test a schema of its own).
//
// # Order without gaps
//
// Every event gets a seq, a number that grows per account, and readers
// page through an account's events by seq ("give me the events after seq
// n"). That only works if seqs become visible in order: if seq 11 were
// visible before seq 10, a reader could see 11, move its cursor past it,
// and never see 10. Handing out numbers from a sequence does not prevent
// that: two transactions draw 10 and 11, and the one holding 11 commits
// first. Herald makes seqs grow in commit order instead.
//
// Each account's row holds last_seq, the seq of its newest event. The
// transaction that appends events (AppendEvents):
//
//  1. locks the row of every account it writes to, in id order (SELECT …
//     FOR NO KEY UPDATE), so that two transactions touching the same
//     accounts cannot deadlock (NO KEY UPDATE excludes other appenders as
//     FOR UPDATE would, without blocking the inserts of API keys, whose
//     foreign key takes a KEY SHARE lock on the account), and reads with
//     it the account's settings and the head of its audit chain;
//  2. looks up which of the event ids are already stored, to answer
//     "duplicate" or "conflict", and reads the lifecycles, profiles,
//     sessions and open visits that the events join (herald.KeysOf);
//  3. decides by herald.PlanAppend, the rule every store follows: it
//     numbers the new events last_seq+1, last_seq+2, … in the order
//     received, applies them to their lifecycles, profiles, sessions and
//     visits, adds the system events they cause (a profile created, a
//     session started) and chains those into the audit log;
//  4. inserts the events and the new lifecycles and profiles, updates
//     the others, upserts the sessions and visits, sets last_seq to the
//     highest seq used and audit_head to the newest chain hash, and
//     commits.
//
// The row lock is held until the transaction ends, and PostgreSQL releases
// it only after the commit is visible to every new snapshot. A second
// transaction on the same account therefore waits at step 1 until the
// first has committed, then reads the first's last_seq and numbers its
// events after it. So seq n+1 is never visible before seq n: a reader that
// has seen seq n will never later find a new event below n, however many
// connections or processes write at once.
//
// Taking the lock before the reads of step 2 matters too. The transaction
// runs at READ COMMITTED, whatever the server's default, where each
// statement sees what was committed when it started; and the reads start
// only once the lock is held, so they see everything that an earlier
// holder wrote. Two processes that receive the same event id at once are
// serialized by the lock: the second finds the first's event and answers
// "duplicate", instead of failing on the unique index. Two that receive
// events of one lifecycle or one entity at once do not lose an update:
// the second reads the lifecycle as the first left it, applies its own
// events and writes it back whole. The lifecycle and the profile are
// written in the commit of their events, so they can never disagree.
// EraseProfile takes the same lock before it reads, so an append of the
// entity's events is wholly before the erasure (and erased) or wholly
// after it.
//
// # System events and the audit chain
//
// Every change made through the API (an account, a key, an event type,
// settings, an erasure) writes its system event in its own transaction,
// through the same steps: the change takes the account's lock first, as
// its first statement, then makes its change, then plans its system
// events with herald.PlanAppend and writes them as an append would. So a
// system event takes the account's next seq in commit order like any
// event, its chain hash follows the head that the previous holder of the
// lock left, and the change and its record commit together or not at
// all. Taking the account's lock before any other lock, as appends do,
// keeps a change and an append from waiting on each other in a cycle.
//
// ExpireJourneys, the sweeper of sessions and visits whose time ran out,
// finds them without a lock, then for each account takes the lock, reads
// them again and lets herald.PlanExpiry decide: a sweeper on another node
// that ended them first, or an event that kept one alive, is seen after
// the lock, so each ends once. VerifyAudit reads the head with last_seq
// and walks the system events up to that seq through a partial index that
// holds only them.
//
// The cost is that appends to one account are serial. Each append takes
// two round trips to the database, both pipelined: one that begins the
// transaction, takes the locks and does the reads, and one that writes
// (one statement for each kind of write, over arrays of rows), moves
// last_seq and commits. The lock is held from the first to the end of the
// second. Appends to different accounts run in parallel, and callers that
// batch many events into one AppendEvents call (group commit) pay the lock
// once per batch.
//
// An error from AppendEvents means that nothing was stored: any failure
// before COMMIT rolls the whole transaction back. Once the last round trip
// has been sent, the caller's context no longer cancels it, since a COMMIT
// cancelled in flight may or may not have happened. Only a connection lost
// during COMMIT leaves the outcome unknown, as with any database; the
// client's retry then answers "duplicate". A nil error comes only after
// PostgreSQL has reported the commit durable (with synchronous_commit on,
// its default).
//
// # Subscriptions and leases
//
// A subscription reads the account's events from its cursor, the seq up
// to which every matching event was delivered, given up on, or queued as
// a message to retry. CreateSubscription reads last_seq for a new
// subscription's cursor under the account's lock, so that no event is
// numbered between that read and the commit: the subscription gets
// exactly the events stored after it, its own system event (subscription
// created) among them. Seqs become visible in order (above), so a
// deliverer that reads after its cursor misses nothing.
//
// When several servers share the database, each active subscription is
// delivered by one of them at a time: the one that holds its lease
// (lease_owner, lease_until). LeaseSubscriptions, which each server's
// engine calls every few seconds, renews in one transaction the leases
// its owner holds, then takes free ones (never leased, given up, or
// expired) with FOR NO KEY UPDATE SKIP LOCKED: two servers that look at
// once take different rows, and a row one has just taken is re-read by
// the other's lock and left out. The renewal waits for locks rather than
// skip them: the lock it meets is most often its own deliverer saving,
// and a lease skipped would look lost. A server that stops renewing (it
// was killed) loses its subscriptions when their leases expire, and the
// others take them at their next call. Non-active subscriptions are
// neither renewed nor taken: their holder stops at its next call, and
// the lease left behind expires unused.
//
// SaveDelivery records a deliverer's attempts, messages and cursor in one
// transaction that refuses (ECONFLICT) an owner that has lost the lease.
// Its first statement locks the subscription's row and reads lease_owner;
// a takeover changes lease_owner under the same row lock, so either the
// save commits wholly before the takeover, or it waits, reads the new
// owner and stores nothing. A deliverer whose lease expired while nobody
// took it over still saves: no one else delivers in its place. Every
// write of the transaction holds the condition that the lease is the
// owner's (EXISTS on the locked row), so the whole transaction goes in
// one pipelined round trip, COMMIT included, and a lost lease makes every
// write a no-op; SaveDelivery reports ECONFLICT from what the lock read.
// One SaveDelivery with ClearFailing may write the system event
// subscription recovered: it takes the account's lock first, as every
// writer of system events does, then the row's, and so needs a few round
// trips; it is rare.
//
// The locks are always taken in the same order, so they cannot deadlock:
// an account's row before a subscription's (changes through the API, and
// a recovering SaveDelivery), and a transaction that locks several
// subscriptions (a renewal) takes them in key order and no account lock.
// A SaveDelivery that recovers nothing takes a single subscription row.
//
// # Workflows and work jobs
//
// Workflows and work jobs (exports and alerts) are leased as
// subscriptions are: LeaseWorkflows and LeaseWork renew an owner's leases
// in key order, waiting for locks, and take free rows with FOR NO KEY
// UPDATE SKIP LOCKED. A workflow is leased active or paused (a paused one
// still moves its cursor); a job only while active. CreateWorkflow and
// CreateWork read last_seq for the cursor under the account's lock, as
// CreateSubscription does. A workflow's runs are leased one by one:
// ClaimRuns takes pending runs that are due, and running ones whose lease
// ran out, of active workflows, with SKIP LOCKED, so that two runners
// never get the same run.
//
// Each save of an engine (EnqueueRuns, SaveRun, SaveWorkProgress) runs in
// one transaction that locks the row of its workflow, run or job with FOR
// NO KEY UPDATE and checks that the owner holds its lease (and, for a
// job, that it is still active) before it writes: a takeover changes the
// lease under the same lock, so either the save commits wholly before it,
// or it reads the new owner and stores nothing (ECONFLICT). When the save
// carries system events (a run started, a job synced), it takes the
// account's lock first, as every writer of system events does, then the
// row's; a save without events takes the row's alone. The order of locks
// is the one above, so nothing waits in a cycle: account, then one
// workflow, run or job row; a renewal takes only rows of one table, in
// key order; ClaimRuns and the takes skip what is locked.
//
// # Wake-ups across servers
//
// A deliverer reads the log when it is told that its account stored
// events, and otherwise every poll interval. A server tells its own
// deliverers directly; for the others, every transaction that stores
// events (an append, the system events of a change, an expiry) also runs
// pg_notify on the channel herald_events (EventsChannel) once for each
// account it stored events for, in its last round trip, so at no cost in
// round trips. PostgreSQL sends the notifications when, and only if, the
// transaction commits, so a listener never hears of events it cannot yet
// read. Store.Listen holds one connection outside the pool that LISTENs
// and passes each account on: an event stored on one server reaches the
// server that holds the subscription's lease within milliseconds, not at
// its next poll. While Listen reconnects, what is committed is found at
// the next poll.
//
// The price is PostgreSQL's: a transaction that notifies takes, at commit,
// a lock of the whole cluster that it holds until its commit is durable,
// so that notifications are queued in commit order. Appends to one account
// are serial anyway (its row lock), but appends to different accounts, on
// any server, then flush their commits one after another instead of
// together. Herald's committer puts many events into one commit under
// load, which keeps commits few.
//
// Event bodies are stored as bytea, the exact bytes that readers get back
// (and that VerifyAudit hashes: a system event's chain hash is checked
// against its stored body, so it must come back as it was written);
// the envelope fields that can be filtered on are copied into columns, each
// with an index that ends in seq, and so is the event's entity.
//
// The JSON Herald writes (lifecycle history and merged data, profile
// attributes, type definitions, settings) is stored as json, not jsonb:
// json keeps the text as written, so a type's schema and a lifecycle's data
// come back byte for byte, and it takes any JSON that is UTF-8. Only
// FindProfiles reads into it, comparing attribute values as jsonb; jsonb
// refuses \u0000, unpaired surrogate escapes and numbers beyond numeric's
// range, so an event that would persist such a value to a profile is
// refused on its own (checkEvent), as is text that PostgreSQL's text
// cannot hold. Such values are stored as they are anywhere else.
package postgres
