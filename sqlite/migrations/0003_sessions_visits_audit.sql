-- Sessions, visits and the audit chain of system events (issue 5).

-- The hash of the account's newest system event: the head of its audit
-- chain, moved by AppendEvents in the commit of the event. NULL until the
-- account has one. A chain that ends before it lost its newest events.
ALTER TABLE accounts ADD COLUMN audit_head TEXT;

-- The audit log is read, and its chain verified, through events_origin
-- (account_id, origin, seq) of migration 0001.

-- herald.Session, kept by AppendEvents in the commit of its events and
-- ended by ExpireJourneys when its time runs out.
CREATE TABLE sessions (
	account_id       TEXT NOT NULL REFERENCES accounts (id),
	id               TEXT NOT NULL,
	entity_id        TEXT,
	started_at       INTEGER NOT NULL,
	last_activity_at INTEGER NOT NULL,
	ended_at         INTEGER,
	end_reason       TEXT,
	expires_at       INTEGER, -- NULL once ended
	event_count      INTEGER NOT NULL,
	start_event_id   TEXT NOT NULL,
	start_seq        INTEGER NOT NULL,
	last_seq         INTEGER NOT NULL,
	PRIMARY KEY (account_id, id)
) STRICT;

-- Lists are ordered by start_seq. The sweeper reads the open sessions that
-- expired, whatever their account: ended ones leave the index.
CREATE INDEX sessions_start_seq ON sessions (account_id, start_seq);
CREATE INDEX sessions_entity_id ON sessions (account_id, entity_id, start_seq) WHERE entity_id IS NOT NULL;
CREATE INDEX sessions_expires_at ON sessions (expires_at) WHERE ended_at IS NULL;

-- herald.Visit, kept like sessions. An entity has at most one open visit.
CREATE TABLE visits (
	account_id       TEXT NOT NULL REFERENCES accounts (id),
	id               TEXT NOT NULL,
	entity_id        TEXT NOT NULL,
	started_at       INTEGER NOT NULL,
	last_activity_at INTEGER NOT NULL,
	ended_at         INTEGER,
	end_reason       TEXT,
	expires_at       INTEGER, -- NULL once ended
	event_count      INTEGER NOT NULL,
	first_seq        INTEGER NOT NULL,
	last_seq         INTEGER NOT NULL,
	PRIMARY KEY (account_id, id)
) STRICT;

CREATE INDEX visits_first_seq ON visits (account_id, first_seq);
CREATE INDEX visits_entity_id ON visits (account_id, entity_id, first_seq);
-- AppendEvents reads the open visit of each entity of its events here. Not
-- unique: a commit writes the visit that ended and the one that begins in
-- one go, and the write lock, not the index, keeps one open per entity.
CREATE INDEX visits_open ON visits (account_id, entity_id) WHERE ended_at IS NULL;
CREATE INDEX visits_expires_at ON visits (expires_at) WHERE ended_at IS NULL;
