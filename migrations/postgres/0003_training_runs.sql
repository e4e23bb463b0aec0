-- Training runs: one row per training job, written by the worker that runs it so every
-- process (the web pages, the API, other workers) sees its state, progress and outcome.
-- The job itself (delivery, retries, a dead worker's job handed to another) is apalis's;
-- this table is what the product shows and what a cancel request flips.

CREATE TABLE training_runs (
    id               BIGSERIAL PRIMARY KEY,
    project_id       BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    params           JSONB NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress         JSONB NOT NULL DEFAULT '{}',
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    attempts         INTEGER NOT NULL DEFAULT 0,
    worker           TEXT,
    error            TEXT,
    version_id       BIGINT REFERENCES model_versions (id) ON DELETE SET NULL,
    requested_by     TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ
);
CREATE INDEX training_runs_project ON training_runs (project_id, id DESC);
