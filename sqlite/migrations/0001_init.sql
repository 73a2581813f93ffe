-- Accounts, API keys and events. Times are unix microseconds (UTC), the
-- precision every Herald store keeps. Empty envelope fields are NULL.

CREATE TABLE accounts (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	-- The seq of the account's newest event. AppendEvents reads and moves
	-- it inside its write transaction; SQLite has one writer at a time, so
	-- seqs are handed out, and become visible, in commit order.
	last_seq   INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	account_id TEXT NOT NULL REFERENCES accounts (id),
	name       TEXT NOT NULL,
	prefix     TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	scopes     TEXT NOT NULL, -- comma-separated
	bootstrap  INTEGER NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX api_keys_account ON api_keys (account_id, created_at);

CREATE TABLE events (
	account_id         TEXT NOT NULL REFERENCES accounts (id),
	seq                INTEGER NOT NULL,
	id                 TEXT NOT NULL,
	category           TEXT NOT NULL,
	type               TEXT NOT NULL,
	event_status       TEXT,
	event_lifecycle_id TEXT,
	core_customer_id   TEXT,
	agent_id           TEXT,
	session_id         TEXT,
	primary_id         TEXT,
	origin             TEXT NOT NULL,
	occurred_at        INTEGER NOT NULL,
	received_at        INTEGER NOT NULL,
	hash               TEXT NOT NULL,
	-- The event as stored (herald.MarshalEvent); reads return it as it is.
	body               BLOB NOT NULL,
	PRIMARY KEY (account_id, seq),
	UNIQUE (account_id, id)
) STRICT;

-- One index per filter, ending in seq, so that a filtered page ordered by
-- seq reads only the rows it returns. Fields that many events leave empty
-- get partial indexes: `col = ?` implies `col IS NOT NULL`, so SQLite uses
-- them for every query that filters on the field.
CREATE INDEX events_category ON events (account_id, category, seq);
CREATE INDEX events_type ON events (account_id, type, seq);
CREATE INDEX events_origin ON events (account_id, origin, seq);
CREATE INDEX events_event_status ON events (account_id, event_status, seq) WHERE event_status IS NOT NULL;
CREATE INDEX events_event_lifecycle_id ON events (account_id, event_lifecycle_id, seq) WHERE event_lifecycle_id IS NOT NULL;
CREATE INDEX events_core_customer_id ON events (account_id, core_customer_id, seq) WHERE core_customer_id IS NOT NULL;
CREATE INDEX events_agent_id ON events (account_id, agent_id, seq) WHERE agent_id IS NOT NULL;
CREATE INDEX events_session_id ON events (account_id, session_id, seq) WHERE session_id IS NOT NULL;
CREATE INDEX events_primary_id ON events (account_id, primary_id, seq) WHERE primary_id IS NOT NULL;
CREATE INDEX events_occurred_at ON events (account_id, occurred_at);

-- The range of occurred_at in each block of 1024 seqs (block = seq >> 10),
-- kept by AppendEvents: a block range index. Events mostly arrive in the
-- order they occurred, so a time filter finds the few blocks it needs here
-- and reads events by seq in those only, instead of sorting every event in
-- the range or scanning from the first seq.
CREATE TABLE event_blocks (
	account_id      TEXT NOT NULL,
	block           INTEGER NOT NULL,
	min_occurred_at INTEGER NOT NULL,
	max_occurred_at INTEGER NOT NULL,
	PRIMARY KEY (account_id, block)
) STRICT, WITHOUT ROWID;
