-- A connector's backfill of the help desk's history: where it stands, so a backfill that
-- stopped (a crash, Ctrl-C, a help desk that kept failing) resumes from the page after the
-- last one stored. One row per connector: a new backfill replaces a finished one.
-- SQLite twin of migrations/postgres/0012_connector_backfills.sql.

CREATE TABLE connector_backfills (
    connector_id INTEGER PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
    since        TEXT NOT NULL,
    -- The next page's cursor (the vendor's own, or an offset); NULL before the first page.
    cursor       TEXT,
    status       TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    pages        INTEGER NOT NULL DEFAULT 0,
    tickets      INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    started_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
