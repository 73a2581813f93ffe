-- Sessions, visits and the audit chain of system events.

-- The hash of the account's newest system event: the head of its audit
-- chain, moved by AppendEvents in the commit of the event, under the
-- account's lock. NULL until the account has one. A chain that ends before
-- it lost its newest events.
ALTER TABLE accounts ADD COLUMN audit_head text;

-- The audit log is read, and its chain verified, through events_origin
-- (account_id, origin, seq) of migration 0001.

-- herald.Session, kept by AppendEvents in the commit of its events and
-- ended by ExpireJourneys when its time runs out. No foreign key to
-- accounts, as for lifecycles: the writer holds the account's row lock.
CREATE TABLE sessions (
	account_id       text NOT NULL,
	id               text NOT NULL,
	entity_id        text,
	started_at       timestamptz NOT NULL,
	last_activity_at timestamptz NOT NULL,
	ended_at         timestamptz,
	end_reason       text,
	expires_at       timestamptz, -- NULL once ended
	event_count      bigint NOT NULL,
	start_event_id   text NOT NULL,
	start_seq        bigint NOT NULL,
	last_seq         bigint NOT NULL,
	PRIMARY KEY (account_id, id)
);

-- Lists are ordered by start_seq. The sweeper reads the open sessions that
-- expired, whatever their account: ended ones leave that index.
CREATE INDEX sessions_start_seq_idx ON sessions (account_id, start_seq);
CREATE INDEX sessions_entity_idx    ON sessions (account_id, entity_id, start_seq) WHERE entity_id IS NOT NULL;
CREATE INDEX sessions_expires_idx   ON sessions (expires_at) WHERE ended_at IS NULL;

-- herald.Visit, kept like sessions.
CREATE TABLE visits (
	account_id       text NOT NULL,
	id               text NOT NULL,
	entity_id        text NOT NULL,
	started_at       timestamptz NOT NULL,
	last_activity_at timestamptz NOT NULL,
	ended_at         timestamptz,
	end_reason       text,
	expires_at       timestamptz, -- NULL once ended
	event_count      bigint NOT NULL,
	first_seq        bigint NOT NULL,
	last_seq         bigint NOT NULL,
	PRIMARY KEY (account_id, id)
);

CREATE INDEX visits_first_seq_idx ON visits (account_id, first_seq);
CREATE INDEX visits_entity_idx    ON visits (account_id, entity_id, first_seq);
-- AppendEvents reads the open visit of each entity of its events here. Not
-- unique: a commit writes the visit that ended and the one that begins in
-- one statement, and the account's lock, not the index, keeps one open per
-- entity.
CREATE INDEX visits_open_idx      ON visits (account_id, entity_id) WHERE ended_at IS NULL;
CREATE INDEX visits_expires_idx   ON visits (expires_at) WHERE ended_at IS NULL;
