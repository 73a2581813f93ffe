-- Workflows and their runs, work jobs (exports and alerts) and their
-- history (issue 7).

-- herald.Workflow. definition holds what a client sets, as JSON; the
-- columns hold what the engine changes (cursor), the state and the lease
-- that says which node reads its triggers.
CREATE TABLE workflows (
	account_id  TEXT NOT NULL REFERENCES accounts (id),
	name        TEXT NOT NULL,
	definition  TEXT NOT NULL,
	secret      TEXT NOT NULL,
	state       TEXT NOT NULL,
	-- The log is read for triggers up to this seq. It only moves forward.
	cursor      INTEGER NOT NULL,
	lease_owner TEXT,
	lease_until INTEGER,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	PRIMARY KEY (account_id, name)
) STRICT;

-- herald.WorkflowRun: kept once finished, as the workflow's history. One
-- per workflow and triggering event, so that a trigger read twice (a node
-- that died before it moved the cursor) starts one run. No foreign key:
-- EnqueueRuns checks the workflow's lease in the same transaction, and
-- DeleteWorkflow removes its runs first.
CREATE TABLE workflow_runs (
	account_id  TEXT NOT NULL,
	id          TEXT NOT NULL,
	workflow    TEXT NOT NULL,
	event_id    TEXT NOT NULL,
	seq         INTEGER NOT NULL,
	trigger     TEXT NOT NULL,
	depth       INTEGER NOT NULL,
	state       TEXT NOT NULL,
	step        INTEGER NOT NULL,
	steps       TEXT NOT NULL,
	next_at     INTEGER,
	error       TEXT,
	lease_owner TEXT,
	lease_until INTEGER,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	finished_at INTEGER,
	PRIMARY KEY (account_id, id),
	UNIQUE (account_id, workflow, event_id)
) STRICT;

-- ClaimRuns takes the oldest runs under way (pending or running) of every
-- account, in the order of this index, so that it stops after the few it
-- takes; finished runs, the many, are left out of it.
CREATE INDEX workflow_runs_open ON workflow_runs (created_at, id) WHERE state IN ('pending', 'running');
-- FindWorkflowRuns pages a workflow's runs, newest first.
CREATE INDEX workflow_runs_workflow ON workflow_runs (account_id, workflow, created_at, id);

-- herald.Work: an export or alert job. definition holds what a client
-- sets, runtime the engine's progress (herald.WorkRuntime), as JSON.
CREATE TABLE work (
	account_id   TEXT NOT NULL REFERENCES accounts (id),
	id           TEXT NOT NULL,
	kind         TEXT NOT NULL,
	definition   TEXT NOT NULL,
	secret       TEXT NOT NULL,
	state        TEXT NOT NULL,
	state_reason TEXT,
	runtime      TEXT NOT NULL,
	run_now_at   INTEGER,
	lease_owner  TEXT,
	lease_until  INTEGER,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	PRIMARY KEY (account_id, id)
) STRICT;

-- LeaseWork reads the active jobs of every account.
CREATE INDEX work_active ON work (lease_owner) WHERE state = 'active';

-- herald.WorkRecord: a job's history, newest read first. AUTOINCREMENT,
-- as for attempts: a page cursor (BeforeID) never points at another
-- record than the one it was taken from. No foreign key, as for runs.
CREATE TABLE work_records (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id TEXT NOT NULL,
	work_id    TEXT NOT NULL,
	kind       TEXT NOT NULL,
	state      TEXT NOT NULL,
	started_at INTEGER NOT NULL,
	record     TEXT NOT NULL
) STRICT;

CREATE INDEX work_records_work ON work_records (account_id, work_id, id);
