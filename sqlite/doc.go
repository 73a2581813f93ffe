// Package sqlite implements Herald's accounts, API keys, events, event
// types, settings, lifecycles, profiles, sessions, visits, audit chain,
// subscriptions and webhook delivery state, workflows and work jobs on an
// embedded SQLite database (modernc.org/sqlite: pure Go, no cgo), so that
// `herald serve` needs no other service.
//
// The database runs in WAL mode with synchronous=FULL: a commit that
// returned is on disk. A Store holds one write connection, so that writes
// queue in Go rather than spin on SQLite's lock, and a separate pool of
// read connections, so that reads never wait behind a write. Because SQLite
// has one writer at a time, seqs are assigned and become visible in commit
// order: a reader paging by seq never skips an event.
//
// AppendEvents follows herald.PlanAppend: inside its write transaction it
// reads what the plan needs (last seqs, audit heads and settings, stored
// ids, the lifecycles, profiles, sessions and open visits the events
// touch: one query per account and kind), and writes the events with their
// lifecycles, profiles, sessions, visits and system events in the same
// commit, so that a crash never leaves them apart. Every change made
// through the API (accounts, keys, event types, settings, erasures) writes
// its system event by the same path, in the change's own transaction, so
// that system events take seqs and links of the audit chain in commit
// order. ExpireJourneys ends sessions and visits that timed out, one write
// transaction per account, re-reading them under the write lock so that
// two sweepers end each once.
//
// The delivery engine keeps its state here too: each subscription's
// cursor, lease and failing time, its pending messages and every attempt.
// SaveDelivery, the commit of every batch of deliveries, runs statements
// prepared at Open that take a whole batch as one JSON array, checks the
// lease in the same transaction so that a node that lost it records
// nothing, and writes the subscription's recovered system event, as the
// subscription changes made through the API write theirs, in its commit.
//
// The workflow and work engines keep their state here as well: each
// workflow's cursor and lease, its runs (one per workflow and triggering
// event) with their leases, each work job's runtime and lease, and its
// history. Every save of an engine checks its lease in the transaction
// that writes, and appends the system events the engine hands it by the
// same path as the API's changes, so that progress and its record commit
// together.
//
// Commits append to the WAL only; a background goroutine owned by the Store
// copies the WAL into the database file (checkpoints), so that no request
// pays for it.
//
// The schema lives in migrations/*.sql, embedded in the binary and applied
// in order by Open; a migration that needs the domain's rules has a step in
// Go as well (see migrationStep).
package sqlite
