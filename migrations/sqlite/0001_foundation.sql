-- Projects, taxonomy, tickets, labels with history and model versions.
-- name_key is the name folded to lower case in Rust, so uniqueness ignores case the same
-- way on both databases.
-- SQLite twin of migrations/postgres/0001_foundation.sql: same tables, SQLite types.

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    label_mode  TEXT NOT NULL DEFAULT 'multi' CHECK (label_mode IN ('multi', 'single')),
    created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX projects_name_unique ON projects (name_key);

CREATE TABLE tags (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    color       TEXT NOT NULL,
    keywords    TEXT NOT NULL DEFAULT '{}',
    archived    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX tags_project_name_unique ON tags (project_id, name_key);

CREATE TABLE tickets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    split       TEXT NOT NULL CHECK (split IN ('train', 'test')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (project_id, source, external_id)
);
CREATE INDEX tickets_project_created ON tickets (project_id, created_at DESC, id DESC);

CREATE TABLE model_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'candidate' CHECK (status IN ('candidate', 'promoted', 'retired')),
    metrics     TEXT NOT NULL DEFAULT '{}',
    -- Hyper-parameters, where the files are, and the SHA-256 of each file: loading refuses
    -- files that do not match.
    params      TEXT NOT NULL DEFAULT '{}',
    artifact_path TEXT NOT NULL DEFAULT '',
    files       TEXT NOT NULL DEFAULT '{}',
    training_fingerprint TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

-- The current label of each source on each (ticket, tag).
CREATE TABLE labels (
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    source      TEXT NOT NULL CHECK (source IN ('human', 'import', 'rule', 'model')),
    set_by      TEXT NOT NULL,
    confidence  REAL,
    present     INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (ticket_id, tag_id, source)
);
CREATE INDEX labels_tag ON labels (tag_id);

-- Every change to a label, never updated.
CREATE TABLE label_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    set_by      TEXT NOT NULL,
    confidence  REAL,
    action      TEXT NOT NULL CHECK (action IN ('added', 'removed')),
    at          TEXT NOT NULL
);
CREATE INDEX label_events_ticket ON label_events (ticket_id, id);
