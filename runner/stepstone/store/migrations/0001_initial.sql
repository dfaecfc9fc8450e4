-- stepstone schema, version 1. Applied by stepstone.store.migrate(); never edit a released
-- migration, add the next number instead.

CREATE TABLE stepstone.runs (
    run_id          text PRIMARY KEY,
    workflow        text NOT NULL,             -- the @workflow name, for listings
    entrypoint      text NOT NULL,             -- module:function, pinned at start
    version         text,                      -- app version or image, pinned at start
    input           jsonb NOT NULL,
    status          text NOT NULL,             -- pending running sleeping waiting succeeded failed cancelled terminated
    epoch           bigint NOT NULL DEFAULT 0, -- attempt; a runner's writes commit only while it is current
    cancel_requested_at timestamptz,
    output          jsonb,
    error           jsonb,
    forked_from     text,
    fork_step       integer,
    parent_run_id   text,
    parent_step     integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    runner          text,                      -- pod name or host:pid of the current attempt
    heartbeat_at    timestamptz,
    current_step    integer,
    current_step_name text,
    current_step_started_at timestamptz,
    completed_steps integer NOT NULL DEFAULT 0, -- published by the heartbeat, not per step
    wake_at         timestamptz,               -- sleeping: wake time; waiting: timeout
    waiting_for     text,                      -- waiting: the event name
    recoveries      integer NOT NULL DEFAULT 0,
    last_failure    jsonb,                     -- evidence of the last lost attempt
    CONSTRAINT runs_status_valid CHECK (status IN ('pending', 'running', 'sleeping', 'waiting',
        'succeeded', 'failed', 'cancelled', 'terminated'))
);
CREATE INDEX runs_status_idx ON stepstone.runs (status, created_at);
CREATE INDEX runs_parent_idx ON stepstone.runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

-- One row per step outcome, written exactly once. No foreign key: the recording statement
-- already locks the run row FOR SHARE to fence stale epochs, which is the same check.
CREATE TABLE stepstone.steps (
    run_id      text NOT NULL,
    step        integer NOT NULL,              -- 1-based, in execution order
    name        text NOT NULL,
    kind        text NOT NULL,                 -- step sleep event child
    status      text NOT NULL,                 -- succeeded failed
    output      jsonb,
    error       jsonb,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 1,    -- tries, counting retries
    epoch       bigint NOT NULL,               -- the attempt that recorded it
    cleanup     boolean NOT NULL DEFAULT false,-- recorded after cancellation was delivered
    PRIMARY KEY (run_id, step)
);

-- Steps taken out of a run's history by resume (cleanup steps of a cancel, the failed step of
-- a failed run), kept for audit.
CREATE TABLE stepstone.step_history (
    LIKE stepstone.steps,
    archived_at timestamptz NOT NULL DEFAULT now(),
    archived_by text NOT NULL
);
CREATE INDEX step_history_run_idx ON stepstone.step_history (run_id, step);

-- Events sent to a run; each is consumed by exactly one wait_for_event step.
CREATE TABLE stepstone.events (
    id            bigserial PRIMARY KEY,
    run_id        text NOT NULL,
    name          text NOT NULL,
    payload       jsonb,
    dedup_key     text,                        -- a sender's id: the same key is stored once
    sent_at       timestamptz NOT NULL DEFAULT now(),
    consumed_step integer,
    UNIQUE (run_id, dedup_key)
);
CREATE INDEX events_pending_idx ON stepstone.events (run_id, name, id) WHERE consumed_step IS NULL;

-- The deadline of a wait_for_event, fixed when the wait first starts so a relaunch keeps it.
CREATE TABLE stepstone.timers (
    run_id   text NOT NULL,
    step     integer NOT NULL,
    deadline timestamptz,
    PRIMARY KEY (run_id, step)
);
