-- Our own outgoing webhooks: URLs a project registers to receive a signed JSON event when
-- a ticket is tagged, and the log of every delivery with its attempts (also the queue: the
-- job only carries a delivery's id).

CREATE TABLE webhooks (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    -- The signing secret, sealed with the server's encryption key like connector credentials.
    secret     BYTEA NOT NULL,
    -- The event names it receives, e.g. ["ticket.tagged"].
    events     JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_project ON webhooks (project_id);

CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    webhook_id      BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    payload         JSONB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- The receiver's last HTTP status, when it answered.
    last_status     INTEGER,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (webhook_id, id);
