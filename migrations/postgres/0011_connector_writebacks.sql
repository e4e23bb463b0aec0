-- Write-backs to help desks: one row per write of our tags to a vendor's ticket, the
-- queue the workbench shows (pending, written, failed with the vendor's reason). The apalis
-- job only carries the row's id; the row says what to write and what became of it.
-- At most one pending write per vendor ticket: new tags join the pending write, so a
-- ticket is never written twice for the same tags.

CREATE TABLE connector_writebacks (
    id              BIGSERIAL PRIMARY KEY,
    connector_id    BIGINT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    external_id     TEXT NOT NULL,
    ticket_id       BIGINT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    -- The vendor labels this write adds.
    labels          JSONB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'written', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX connector_writebacks_one_pending
    ON connector_writebacks (connector_id, external_id) WHERE status = 'pending';
CREATE INDEX connector_writebacks_recent ON connector_writebacks (connector_id, id);
