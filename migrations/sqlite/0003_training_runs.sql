-- Training runs: one row per training job, written by the worker that runs it so every
-- process (the web pages, the API, other workers) sees its state, progress and outcome.
-- SQLite twin of migrations/postgres/0003_training_runs.sql.

CREATE TABLE training_runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id       INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    params           TEXT NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress         TEXT NOT NULL DEFAULT '{}',
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    attempts         INTEGER NOT NULL DEFAULT 0,
    worker           TEXT,
    error            TEXT,
    version_id       INTEGER REFERENCES model_versions (id) ON DELETE SET NULL,
    requested_by     TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
);
CREATE INDEX training_runs_project ON training_runs (project_id, id DESC);
