-- Subscriptions and the state of their webhook deliveries (issue 6).

-- herald.Subscription. definition holds the settings a client chooses, as
-- JSON; the columns hold what Herald changes as it delivers (state,
-- failing_since, cursor) and the lease that says which node delivers it.
CREATE TABLE subscriptions (
	account_id    TEXT NOT NULL REFERENCES accounts (id),
	id            TEXT NOT NULL,
	name          TEXT NOT NULL,
	definition    TEXT NOT NULL,
	state         TEXT NOT NULL,
	state_reason  TEXT,
	failing_since INTEGER,
	-- Every matching event up to this seq is delivered, dead, or among
	-- the subscription's messages. It only moves forward.
	cursor        INTEGER NOT NULL,
	lease_owner   TEXT,
	lease_until   INTEGER,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	PRIMARY KEY (account_id, id)
) STRICT;

-- LeaseSubscriptions reads the active subscriptions of every account.
CREATE INDEX subscriptions_active ON subscriptions (lease_owner) WHERE state = 'active';

-- The secrets that sign a subscription's requests: the current one, with
-- no expires_at, and rotated ones that sign beside it until they expire.
CREATE TABLE subscription_secrets (
	account_id      TEXT NOT NULL,
	subscription_id TEXT NOT NULL,
	secret          TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER,
	FOREIGN KEY (account_id, subscription_id) REFERENCES subscriptions (account_id, id)
) STRICT;

CREATE INDEX subscription_secrets_subscription ON subscription_secrets (account_id, subscription_id);

-- herald.Message: an event whose first attempt did not get through, until
-- it is delivered (the row goes) or retried by hand once dead. No foreign
-- key: SaveDelivery, which writes them, checks the subscription's lease
-- in the same transaction, and DeleteSubscription removes them first.
CREATE TABLE messages (
	account_id      TEXT NOT NULL,
	subscription_id TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	event_id        TEXT NOT NULL,
	order_key       TEXT,
	state           TEXT NOT NULL,
	attempts        INTEGER NOT NULL,
	next_attempt_at INTEGER,
	last_status     INTEGER,
	last_error      TEXT,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	PRIMARY KEY (account_id, subscription_id, seq)
) STRICT, WITHOUT ROWID;

-- DueMessages reads the retrying ones due by now and the waiting ones
-- here; in ordered mode it looks for an earlier message of the same key in
-- messages_order.
CREATE INDEX messages_due ON messages (account_id, subscription_id, state, next_attempt_at);
CREATE INDEX messages_order ON messages (account_id, subscription_id, order_key, seq) WHERE order_key IS NOT NULL;

-- herald.Attempt: every request made, newest read first. AUTOINCREMENT:
-- an id is never handed out twice, so that a page cursor (BeforeID) never
-- points at another attempt than the one it was taken from. No foreign
-- key, as for messages.
CREATE TABLE attempts (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id      TEXT NOT NULL,
	subscription_id TEXT NOT NULL,
	event_id        TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	number          INTEGER NOT NULL,
	at              INTEGER NOT NULL,
	outcome         TEXT NOT NULL,
	status_code     INTEGER,
	latency_us      INTEGER NOT NULL,
	error           TEXT,
	response        TEXT
) STRICT;

CREATE INDEX attempts_subscription ON attempts (account_id, subscription_id, id);
