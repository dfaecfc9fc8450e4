-- What a cluster run was started with (the Workflow's spec and the WorkflowRun's identity),
-- written once by the operator; every relaunch uses it, so editing a Workflow never changes a
-- run in flight. NULL for runs started outside a cluster.
ALTER TABLE stepstone.runs ADD COLUMN pinned jsonb;
CREATE INDEX runs_active_idx ON stepstone.runs (updated_at)
    WHERE status IN ('pending', 'running', 'sleeping', 'waiting');
