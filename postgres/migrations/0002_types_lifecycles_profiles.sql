-- Event types, account settings, lifecycles and entity profiles.
--
-- JSON that Herald writes is kept as json, not jsonb: json keeps the text
-- as written, so a schema is served back as the account wrote it and
-- merged data and attribute values come back byte for byte (jsonb reorders
-- keys, decodes escapes and rewrites numbers), and json accepts everything
-- JSON allows, where jsonb refuses \u0000 and numbers beyond numeric's
-- range, which a client may send in data. Nothing here is searched by its
-- JSON except profile attributes (see FindProfiles).

-- The account's herald.Settings; NULL until it changes any.
ALTER TABLE accounts ADD COLUMN settings json;

-- The entity of the event (herald.Event.EntityID): its coreCustomerId, else
-- its agentId when agentType is "customer" in any case.
ALTER TABLE events ADD COLUMN entity_id text;

UPDATE events SET entity_id = core_customer_id WHERE core_customer_id IS NOT NULL;

-- agentType has no column: it is read from the body. The body is read as
-- bytes, not parsed, since data may hold what PostgreSQL's text and jsonb
-- refuse. Bodies are herald.MarshalEvent's output, compact JSON whose
-- envelope fields come before data in a fixed order: the first
-- "agentType":" is the envelope's when it comes before the first "data":
-- (in compact JSON that text is a key; and no object precedes data).
-- Go's EqualFold also takes the long s (U+017F) for an s.
UPDATE events e SET entity_id = e.agent_id
FROM (
	-- CASE, not WHERE: only CASE fixes the order of evaluation, and the
	-- bytes after another "agentType": may not be UTF-8.
	SELECT account_id, seq, CASE WHEN at > 0 AND (dt = 0 OR at < dt) THEN
		convert_from(substring(body FROM at + 13 FOR position('"'::bytea IN substring(body FROM at + 13)) - 1), 'UTF8')
	END AS agent_type
	FROM (
		SELECT account_id, seq, body,
			position('"agentType":"'::bytea IN body) AS at,
			position('"data":'::bytea IN body) AS dt
		FROM events
		WHERE core_customer_id IS NULL AND agent_id IS NOT NULL
	) AS p
) AS a
WHERE e.account_id = a.account_id AND e.seq = a.seq
	AND lower(replace(a.agent_type, 'ſ', 's')) = 'customer';

-- The entity index takes the place of the coreCustomerId one: an event
-- with a coreCustomerId has it as its entity, so a filter on
-- core_customer_id = $n also says entity_id = $n, which this index
-- answers. Each index on a customer id costs a random page per event.
CREATE INDEX events_entity_idx ON events (account_id, entity_id, seq) WHERE entity_id IS NOT NULL;
DROP INDEX events_customer_idx;

-- The types an account has defined or changed; built-in types it has not
-- changed are not stored. A type's schema is served as <type>EventSchema,
-- so a type name is unique in the account, whatever its category.
CREATE TABLE event_types (
	account_id text NOT NULL REFERENCES accounts (id),
	category   text NOT NULL,
	type       text NOT NULL,
	-- herald.EventType, less the names and times that the columns hold.
	definition json NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (account_id, category, type),
	CONSTRAINT event_types_type_key UNIQUE (account_id, type)
);

-- herald.Lifecycle, written by AppendEvents in the commit of its events.
-- No foreign key to accounts: AppendEvents holds the account's row lock,
-- and a check per row would slow every commit.
CREATE TABLE lifecycles (
	account_id        text NOT NULL,
	id                text NOT NULL,
	category          text NOT NULL,
	type              text NOT NULL,
	status            text, -- NULL while no event has had one
	terminal          boolean NOT NULL,
	entity_id         text,
	first_occurred_at timestamptz NOT NULL,
	last_occurred_at  timestamptz NOT NULL,
	first_seq         bigint NOT NULL,
	last_seq          bigint NOT NULL,
	updated_at        timestamptz NOT NULL,
	event_count       bigint NOT NULL,
	redacted          boolean NOT NULL DEFAULT false,
	history           json NOT NULL, -- [herald.LifecycleStep]
	data              json,          -- the merged data; NULL when none or redacted
	data_stamps       json,          -- {field: herald.Stamp}; NULL when none
	PRIMARY KEY (account_id, id)
);

-- Lists are ordered by first_seq, which a lifecycle keeps once created:
-- an index ending in it for each filter that selects few lifecycles (type,
-- status, entity, time). category and terminal select many and are
-- answered by reading in first_seq order; every index here costs a write
-- on every lifecycle change.
CREATE INDEX lifecycles_first_seq_idx ON lifecycles (account_id, first_seq);
CREATE INDEX lifecycles_type_idx      ON lifecycles (account_id, type, first_seq);
CREATE INDEX lifecycles_status_idx    ON lifecycles (account_id, status, first_seq) WHERE status IS NOT NULL;
CREATE INDEX lifecycles_entity_idx    ON lifecycles (account_id, entity_id, first_seq) WHERE entity_id IS NOT NULL;
CREATE INDEX lifecycles_occurred_idx  ON lifecycles (account_id, first_occurred_at);

-- herald.Profile, written by AppendEvents in the commit of its events.
CREATE TABLE profiles (
	account_id    text NOT NULL,
	id            text NOT NULL,
	first_seen_at timestamptz NOT NULL,
	last_seen_at  timestamptz NOT NULL,
	event_count   bigint NOT NULL,
	first_seq     bigint NOT NULL,
	last_seq      bigint NOT NULL,
	created_at    timestamptz NOT NULL,
	updated_at    timestamptz NOT NULL,
	attributes    json NOT NULL, -- {name: herald.Attribute}
	counts        json NOT NULL, -- {"category/type": n}
	PRIMARY KEY (account_id, id)
);
-- Room on each page for updated rows, so that profile updates stay HOT.
ALTER TABLE profiles SET (fillfactor = 70);

-- No index on last_seen_at, which changes with every event of the entity:
-- without it, updating a profile changes no indexed column, so PostgreSQL
-- can update it in place (HOT) without touching any index.
CREATE INDEX profiles_first_seq_idx ON profiles (account_id, first_seq);
