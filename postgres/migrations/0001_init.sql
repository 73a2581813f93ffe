-- Accounts, API keys and the event log.

CREATE TABLE accounts (
	id         text PRIMARY KEY,
	name       text NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL,
	-- last_seq is the seq of the account's newest event. Its row is locked by
	-- every transaction that appends events to the account: see doc.go.
	last_seq   bigint NOT NULL DEFAULT 0
);

CREATE TABLE api_keys (
	id         text PRIMARY KEY,
	account_id text NOT NULL REFERENCES accounts (id),
	name       text NOT NULL DEFAULT '',
	prefix     text NOT NULL DEFAULT '',
	hash       text NOT NULL UNIQUE,
	scopes     text[] NOT NULL DEFAULT '{}',
	bootstrap  boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL
);

CREATE INDEX api_keys_account_idx ON api_keys (account_id, created_at, id);

-- events holds every stored event. body is the exact JSON returned to
-- readers; it is bytea rather than text or jsonb so that it comes back byte
-- for byte whatever it holds (jsonb reorders keys, text refuses some bytes).
-- The other columns copy envelope fields so that they can be filtered on;
-- empty strings are stored as NULL.
CREATE TABLE events (
	account_id         text NOT NULL,
	seq                bigint NOT NULL,
	id                 text NOT NULL,
	category           text NOT NULL,
	type               text NOT NULL,
	event_status       text,
	event_lifecycle_id text,
	core_customer_id   text,
	agent_id           text,
	session_id         text,
	primary_id         text,
	origin             text NOT NULL,
	occurred_at        timestamptz NOT NULL,
	received_at        timestamptz NOT NULL,
	hash               text NOT NULL,
	body               bytea NOT NULL,
	PRIMARY KEY (account_id, seq),
	UNIQUE (account_id, id)
);

-- One index per filter, ending in seq, so that a filtered query ordered by
-- seq reads only the rows it returns. Fields that many events leave empty
-- get partial indexes.
CREATE INDEX events_category_idx  ON events (account_id, category, seq);
CREATE INDEX events_type_idx      ON events (account_id, type, seq);
CREATE INDEX events_origin_idx    ON events (account_id, origin, seq);
CREATE INDEX events_status_idx    ON events (account_id, event_status, seq) WHERE event_status IS NOT NULL;
CREATE INDEX events_lifecycle_idx ON events (account_id, event_lifecycle_id, seq) WHERE event_lifecycle_id IS NOT NULL;
CREATE INDEX events_customer_idx  ON events (account_id, core_customer_id, seq) WHERE core_customer_id IS NOT NULL;
CREATE INDEX events_agent_idx     ON events (account_id, agent_id, seq) WHERE agent_id IS NOT NULL;
CREATE INDEX events_session_idx   ON events (account_id, session_id, seq) WHERE session_id IS NOT NULL;
CREATE INDEX events_primary_idx   ON events (account_id, primary_id, seq) WHERE primary_id IS NOT NULL;
CREATE INDEX events_occurred_idx  ON events (account_id, occurred_at);
