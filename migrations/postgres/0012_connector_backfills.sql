-- A connector's backfill of the help desk's history: where it stands, so a backfill that
-- stopped (a crash, Ctrl-C, a help desk that kept failing) resumes from the page after the
-- last one stored. One row per connector: a new backfill replaces a finished one.

CREATE TABLE connector_backfills (
    connector_id BIGINT PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
    since        TIMESTAMPTZ NOT NULL,
    -- The next page's cursor (the vendor's own, or an offset); NULL before the first page.
    cursor       TEXT,
    status       TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    pages        BIGINT NOT NULL DEFAULT 0,
    tickets      BIGINT NOT NULL DEFAULT 0,
    skipped      BIGINT NOT NULL DEFAULT 0,
    error        TEXT,
    started_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
