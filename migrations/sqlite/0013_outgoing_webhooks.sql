-- Our own outgoing webhooks: URLs a project registers to receive a signed JSON event when
-- a ticket is tagged, and the log of every delivery with its attempts (also the queue: the
-- job only carries a delivery's id).
-- SQLite twin of migrations/postgres/0013_outgoing_webhooks.sql.

CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    -- The signing secret, sealed with the server's encryption key like connector credentials.
    secret     BLOB NOT NULL,
    -- The event names it receives, e.g. ["ticket.tagged"].
    events     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX webhooks_project ON webhooks (project_id);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- The receiver's last HTTP status, when it answered.
    last_status     INTEGER,
    last_error      TEXT,
    next_attempt_at TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (webhook_id, id);
