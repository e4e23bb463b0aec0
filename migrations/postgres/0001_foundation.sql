-- Projects, taxonomy, tickets, labels with history and model versions.
-- name_key is the name folded to lower case in Rust, so uniqueness ignores case the same
-- way on both databases.

CREATE TABLE projects (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    label_mode  TEXT NOT NULL DEFAULT 'multi' CHECK (label_mode IN ('multi', 'single')),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX projects_name_unique ON projects (name_key);

CREATE TABLE tags (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    color       TEXT NOT NULL,
    keywords    JSONB NOT NULL DEFAULT '{}',
    archived    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX tags_project_name_unique ON tags (project_id, name_key);

CREATE TABLE tickets (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    metadata    JSONB NOT NULL DEFAULT '{}',
    split       TEXT NOT NULL CHECK (split IN ('train', 'test')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, source, external_id)
);
CREATE INDEX tickets_project_created ON tickets (project_id, created_at DESC, id DESC);

CREATE TABLE model_versions (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'candidate' CHECK (status IN ('candidate', 'promoted', 'retired')),
    metrics     JSONB NOT NULL DEFAULT '{}',
    -- Hyper-parameters, where the files are, and the SHA-256 of each file: loading refuses
    -- files that do not match.
    params      JSONB NOT NULL DEFAULT '{}',
    artifact_path TEXT NOT NULL DEFAULT '',
    files       JSONB NOT NULL DEFAULT '{}',
    training_fingerprint TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);

-- The current label of each source on each (ticket, tag).
CREATE TABLE labels (
    ticket_id   BIGINT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    tag_id      BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    source      TEXT NOT NULL CHECK (source IN ('human', 'import', 'rule', 'model')),
    set_by      TEXT NOT NULL,
    confidence  REAL,
    present     BOOLEAN NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (ticket_id, tag_id, source)
);
CREATE INDEX labels_tag ON labels (tag_id);

-- Every change to a label, never updated.
CREATE TABLE label_events (
    id          BIGSERIAL PRIMARY KEY,
    ticket_id   BIGINT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    tag_id      BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    set_by      TEXT NOT NULL,
    confidence  REAL,
    action      TEXT NOT NULL CHECK (action IN ('added', 'removed')),
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX label_events_ticket ON label_events (ticket_id, id);
