-- Workflows and their runs, work jobs (exports and alerts) and their
-- history (issue 7). Names and ids that lists are ordered by are of the
-- "C" collation: byte order, as SQLite sorts them.

-- herald.Workflow. definition holds what a client sets, as json; the
-- columns hold what the engine changes (cursor), the state and the lease
-- that says which node reads its triggers (see doc.go).
CREATE TABLE workflows (
	account_id  text NOT NULL REFERENCES accounts (id),
	name        text COLLATE "C" NOT NULL,
	definition  json NOT NULL,
	secret      text NOT NULL,
	state       text NOT NULL,
	-- The log is read for triggers up to this seq. It only moves forward.
	cursor      bigint NOT NULL,
	lease_owner text,
	lease_until timestamptz,
	created_at  timestamptz NOT NULL,
	updated_at  timestamptz NOT NULL,
	PRIMARY KEY (account_id, name)
);
-- The cursor and the lease move often: room on each page keeps those
-- updates HOT.
ALTER TABLE workflows SET (fillfactor = 70);

-- herald.WorkflowRun: kept once finished, as the workflow's history. One
-- per workflow and triggering event, so that a trigger read twice (a node
-- that died before it moved the cursor) starts one run. No foreign key:
-- EnqueueRuns holds the workflow's row lock and checks its lease, and
-- DeleteWorkflow removes its runs first.
CREATE TABLE workflow_runs (
	account_id  text NOT NULL,
	id          text COLLATE "C" NOT NULL,
	workflow    text COLLATE "C" NOT NULL,
	event_id    text NOT NULL,
	seq         bigint NOT NULL,
	trigger     text NOT NULL,
	depth       integer NOT NULL,
	state       text NOT NULL,
	step        integer NOT NULL,
	steps       json NOT NULL,
	next_at     timestamptz,
	error       text,
	lease_owner text,
	lease_until timestamptz,
	created_at  timestamptz NOT NULL,
	updated_at  timestamptz NOT NULL,
	finished_at timestamptz,
	PRIMARY KEY (account_id, id),
	UNIQUE (account_id, workflow, event_id)
);

-- ClaimRuns takes the oldest runs under way (pending or running) of every
-- account, in the order of this index, so that it stops after the few it
-- takes; finished runs, the many, are left out of it.
CREATE INDEX workflow_runs_open_idx ON workflow_runs (created_at, id) WHERE state IN ('pending', 'running');
-- FindWorkflowRuns pages a workflow's runs, newest first.
CREATE INDEX workflow_runs_workflow_idx ON workflow_runs (account_id, workflow, created_at, id);

-- herald.Work: an export or alert job. definition holds what a client
-- sets, runtime the engine's progress (herald.WorkRuntime), as json.
CREATE TABLE work (
	account_id   text NOT NULL REFERENCES accounts (id),
	id           text COLLATE "C" NOT NULL,
	kind         text NOT NULL,
	definition   json NOT NULL,
	secret       text NOT NULL,
	state        text NOT NULL,
	state_reason text,
	runtime      json NOT NULL,
	run_now_at   timestamptz,
	lease_owner  text,
	lease_until  timestamptz,
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL,
	PRIMARY KEY (account_id, id)
);
ALTER TABLE work SET (fillfactor = 70);

-- LeaseWork reads the active jobs of every account.
CREATE INDEX work_active_idx ON work (created_at) WHERE state = 'active';

-- herald.WorkRecord: a job's history, newest read first. An identity
-- never hands out an id twice, as for attempts. No foreign key, as for
-- runs.
CREATE TABLE work_records (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id text NOT NULL,
	work_id    text NOT NULL,
	kind       text NOT NULL,
	state      text NOT NULL,
	started_at timestamptz NOT NULL,
	record     json NOT NULL
);

CREATE INDEX work_records_work_idx ON work_records (account_id, work_id, id);
