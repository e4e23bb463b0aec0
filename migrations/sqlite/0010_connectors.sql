-- Connectors to help desks (Zendesk, Jira, ServiceNow): their settings, their credentials
-- sealed with the server's encryption key, the tickets they delivered and a log of every
-- delivery. A connector's tickets are ordinary tickets whose `source` is the connector's
-- name, so (project, source, external id) stays the one key of a ticket.
-- SQLite twin of migrations/postgres/0010_connectors.sql.

CREATE TABLE connectors (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    system      TEXT NOT NULL CHECK (system IN ('zendesk', 'jira', 'servicenow')),
    base_url    TEXT NOT NULL,
    -- Table, write-back switch, label mapping: JSON, so a setting needs no migration.
    settings    TEXT NOT NULL DEFAULT '{}',
    -- Webhook secret, user and token as one XChaCha20-Poly1305 box (nonce first); the
    -- key is the server's, never in the database.
    credentials BLOB NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX connectors_name_unique ON connectors (name_key);

-- One row per ticket a connector delivered: the vendor's last change time, so a delivery
-- older than the stored one changes nothing, and the labels our write-back last wrote, so
-- the webhook that write causes is not taken for people's labels.
CREATE TABLE connector_tickets (
    connector_id      INTEGER NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    external_id       TEXT NOT NULL,
    ticket_id         INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    vendor_updated_at TEXT,
    written_labels    TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (connector_id, external_id)
);
CREATE INDEX connector_tickets_ticket ON connector_tickets (ticket_id);

-- Every delivery that passed its signature check, once: a redelivery (same dedupe key)
-- finds its row and stores nothing new.
CREATE TABLE connector_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connector_id INTEGER NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    dedupe_key   TEXT NOT NULL,
    event        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('received', 'stored', 'ignored', 'stale', 'awaiting_fetch')),
    ticket_id    INTEGER REFERENCES tickets (id) ON DELETE SET NULL,
    received_at  TEXT NOT NULL,
    UNIQUE (connector_id, dedupe_key)
);
CREATE INDEX connector_deliveries_recent ON connector_deliveries (connector_id, id);
