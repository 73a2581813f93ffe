-- Event types, account settings, lifecycles and entity profiles (issue 4).
-- JSON columns are TEXT, not BLOB: SQLite's JSON functions take a BLOB for
-- its binary JSONB form.

-- The account's herald.Settings as JSON; NULL until it changes any.
ALTER TABLE accounts ADD COLUMN settings TEXT;

-- The entity of the event (herald.Event.EntityID): its coreCustomerId, else
-- its agentId when agentType is "customer" in any case.
ALTER TABLE events ADD COLUMN entity_id TEXT;

UPDATE events SET entity_id = coalesce(core_customer_id,
	CASE WHEN lower(json_extract(CAST(body AS TEXT), '$.agentType')) = 'customer' THEN agent_id END)
WHERE core_customer_id IS NOT NULL OR agent_id IS NOT NULL;

-- The entity index takes the place of the coreCustomerId one: an event
-- with a coreCustomerId has it as its entity, so a filter on
-- core_customer_id = ? also says entity_id = ?, which this index answers.
-- One index on a customer id costs a random page per event on every
-- commit; two cost twice that.
CREATE INDEX events_entity_id ON events (account_id, entity_id, seq) WHERE entity_id IS NOT NULL;
DROP INDEX events_core_customer_id;

-- Time filters read the blocks of event_blocks, then events by seq within
-- them (see FindEvents); nothing reads this index, and every event wrote to
-- it.
DROP INDEX events_occurred_at;

-- The types an account has defined or changed; built-in types it has not
-- changed are not stored. A type's schema is served as <type>EventSchema,
-- so a type name is unique in the account, whatever its category.
CREATE TABLE event_types (
	account_id TEXT NOT NULL REFERENCES accounts (id),
	category   TEXT NOT NULL,
	type       TEXT NOT NULL,
	-- herald.EventType as JSON; the columns hold the times that count.
	definition TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (account_id, category, type),
	UNIQUE (account_id, type)
) STRICT;

-- herald.Lifecycle, kept by AppendEvents in the commit of its events.
CREATE TABLE lifecycles (
	account_id        TEXT NOT NULL REFERENCES accounts (id),
	id                TEXT NOT NULL,
	category          TEXT NOT NULL,
	type              TEXT NOT NULL,
	status            TEXT, -- NULL while no event has had one
	terminal          INTEGER NOT NULL,
	entity_id         TEXT,
	first_occurred_at INTEGER NOT NULL,
	last_occurred_at  INTEGER NOT NULL,
	first_seq         INTEGER NOT NULL,
	last_seq          INTEGER NOT NULL,
	updated_at        INTEGER NOT NULL,
	event_count       INTEGER NOT NULL,
	redacted          INTEGER NOT NULL DEFAULT 0,
	history           TEXT NOT NULL, -- [herald.LifecycleStep]
	data              TEXT,          -- the merged data; NULL when none or redacted
	data_stamps       TEXT,          -- {field: herald.Stamp}
	PRIMARY KEY (account_id, id)
) STRICT;

-- Lists are ordered by first_seq: an index ending in it for each filter
-- that selects few lifecycles (type, status, entity, time). category and
-- terminal select many and are answered by reading in first_seq order;
-- every index here costs a write on every lifecycle change.
CREATE INDEX lifecycles_first_seq ON lifecycles (account_id, first_seq);
CREATE INDEX lifecycles_type ON lifecycles (account_id, type, first_seq);
CREATE INDEX lifecycles_status ON lifecycles (account_id, status, first_seq) WHERE status IS NOT NULL;
CREATE INDEX lifecycles_entity_id ON lifecycles (account_id, entity_id, first_seq) WHERE entity_id IS NOT NULL;
CREATE INDEX lifecycles_first_occurred_at ON lifecycles (account_id, first_occurred_at);

-- herald.Profile, kept by AppendEvents in the commit of its events.
CREATE TABLE profiles (
	account_id    TEXT NOT NULL REFERENCES accounts (id),
	id            TEXT NOT NULL,
	first_seen_at INTEGER NOT NULL,
	last_seen_at  INTEGER NOT NULL,
	event_count   INTEGER NOT NULL,
	first_seq     INTEGER NOT NULL,
	last_seq      INTEGER NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	attributes    TEXT NOT NULL, -- {name: herald.Attribute}
	counts        TEXT NOT NULL, -- {"category/type": n}
	PRIMARY KEY (account_id, id)
) STRICT;

-- No index on last_seen_at: it changes with every event of the entity, so
-- each commit would move one entry per entity it touched, at a random
-- place. A filter on it reads profiles by first_seq instead.
CREATE INDEX profiles_first_seq ON profiles (account_id, first_seq);
