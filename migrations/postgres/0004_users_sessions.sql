-- The web workbench: accounts with roles, login sessions (only a hash of each token is
-- stored), full-text search over tickets and the indexes its pages need to stay fast on
-- 100,000 tickets.

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'ml-engineer', 'labeler')),
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX users_username_unique ON users (username_key);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- The ticket browser filters by source and pages by date.
CREATE INDEX tickets_project_source_created ON tickets (project_id, source, created_at DESC, id DESC);
-- Dashboard counts per tag and source without touching the tickets.
CREATE INDEX labels_tag_source ON labels (tag_id, source, present, ticket_id);

-- Full-text search; queries must use this exact expression to use the index.
CREATE INDEX tickets_fts ON tickets USING gin (to_tsvector('simple', subject || ' ' || body));
