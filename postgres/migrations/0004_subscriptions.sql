-- Subscriptions and the state of their webhook deliveries (issue 6).

-- herald.Subscription. definition holds the settings a client chooses, as
-- json (kept as written, like the other JSON Herald writes); the columns
-- hold what Herald changes as it delivers (state, failing_since, cursor)
-- and the lease that says which node delivers it (see doc.go).
CREATE TABLE subscriptions (
	account_id    text NOT NULL REFERENCES accounts (id),
	id            text NOT NULL,
	name          text NOT NULL DEFAULT '',
	definition    json NOT NULL,
	state         text NOT NULL,
	state_reason  text,
	failing_since timestamptz,
	-- Every matching event up to this seq is delivered, dead, or among the
	-- subscription's messages. It only moves forward.
	cursor        bigint NOT NULL,
	lease_owner   text,
	lease_until   timestamptz,
	created_at    timestamptz NOT NULL,
	updated_at    timestamptz NOT NULL,
	PRIMARY KEY (account_id, id)
);
-- SaveDelivery moves the cursor many times a second, and lease renewals
-- move lease_until: room on each page keeps those updates HOT (no indexed
-- column changes), so they touch no index.
ALTER TABLE subscriptions SET (fillfactor = 70);

-- LeaseSubscriptions reads the active subscriptions of every account, a
-- few times a minute per node; the lease columns are left out of the
-- index so that renewing a lease stays a HOT update.
CREATE INDEX subscriptions_active_idx ON subscriptions (created_at) WHERE state = 'active';

-- The secrets that sign a subscription's requests: the current one, with
-- no expires_at, and rotated ones that sign beside it until they expire.
CREATE TABLE subscription_secrets (
	account_id      text NOT NULL,
	subscription_id text NOT NULL,
	secret          text NOT NULL,
	created_at      timestamptz NOT NULL,
	expires_at      timestamptz,
	FOREIGN KEY (account_id, subscription_id) REFERENCES subscriptions (account_id, id)
);

CREATE INDEX subscription_secrets_subscription_idx ON subscription_secrets (account_id, subscription_id);

-- herald.Message: an event whose first attempt did not get through, until
-- it is delivered (the row goes) or retried by hand once dead. No foreign
-- key: SaveDelivery, which writes them, holds the subscription's row lock
-- and checks its lease in the same transaction, and DeleteSubscription
-- removes them.
CREATE TABLE messages (
	account_id      text NOT NULL,
	subscription_id text NOT NULL,
	seq             bigint NOT NULL,
	event_id        text NOT NULL,
	order_key       text,
	state           text NOT NULL,
	attempts        integer NOT NULL,
	next_attempt_at timestamptz,
	last_status     integer,
	last_error      text,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	PRIMARY KEY (account_id, subscription_id, seq)
);

-- DueMessages reads the retrying ones due by now in messages_due_idx, the
-- oldest waiting one of each key in messages_waiting_idx (one probe per
-- key, not one per waiting message: an ordered subscription whose endpoint
-- is down has many waiting behind each retrying one), and looks for an
-- earlier message of the same key in messages_order_idx.
CREATE INDEX messages_due_idx     ON messages (account_id, subscription_id, state, next_attempt_at);
CREATE INDEX messages_order_idx   ON messages (account_id, subscription_id, order_key, seq) WHERE order_key IS NOT NULL;
CREATE INDEX messages_waiting_idx ON messages (account_id, subscription_id, order_key, seq)
	WHERE state = 'waiting' AND order_key IS NOT NULL;

-- herald.Attempt: every request made, newest read first. An identity
-- never hands out an id twice, so that a page cursor (BeforeID) never
-- points at another attempt than the one it was taken from. No foreign
-- key, as for messages. response is bytea: the start of whatever an
-- endpoint answered, which text could refuse.
CREATE TABLE attempts (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id      text NOT NULL,
	subscription_id text NOT NULL,
	event_id        text NOT NULL,
	seq             bigint NOT NULL,
	number          integer NOT NULL,
	at              timestamptz NOT NULL,
	outcome         text NOT NULL,
	status_code     integer,
	latency_us      bigint NOT NULL,
	error           text,
	response        bytea
);

CREATE INDEX attempts_subscription_idx ON attempts (account_id, subscription_id, id);
