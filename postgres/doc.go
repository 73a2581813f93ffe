// Package postgres stores Herald's accounts, API keys and events in
// PostgreSQL, through pgx. Several Herald processes may share one database.
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
//     foreign key takes a KEY SHARE lock on the account);
//  2. looks up which of the event ids are already stored, to answer
//     "duplicate" or "conflict";
//  3. numbers the new events last_seq+1, last_seq+2, … in the order
//     received, and inserts them;
//  4. sets last_seq to the highest seq used, and commits.
//
// The row lock is held until the transaction ends, and PostgreSQL releases
// it only after the commit is visible to every new snapshot. A second
// transaction on the same account therefore waits at step 1 until the
// first has committed, then reads the first's last_seq and numbers its
// events after it. So seq n+1 is never visible before seq n: a reader that
// has seen seq n will never later find a new event below n, however many
// connections or processes write at once.
//
// Taking the lock before the duplicate lookup matters too. The transaction
// runs at READ COMMITTED, whatever the server's default, where each
// statement sees what was committed when it started; and
// the lookup starts only once the lock is held, so it sees every event that
// an earlier holder stored. Two processes that receive the same event id
// at once are serialized by the lock: the second finds the first's event
// and answers "duplicate", instead of failing on the unique index.
//
// The cost is that appends to one account are serial. Each append takes
// two round trips to the database, both pipelined: one that begins the
// transaction, takes the locks and looks up the ids, and one that inserts
// the events (one statement for all of them), moves last_seq and commits.
// The lock is held from the first to the end of the second. Appends to
// different accounts run in parallel, and callers that batch many events
// into one AppendEvents call (group commit) pay the lock once per batch.
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
// Event bodies are stored as bytea, the exact bytes that readers get back;
// the envelope fields that can be filtered on are copied into columns, each
// with an index that ends in seq.
package postgres
