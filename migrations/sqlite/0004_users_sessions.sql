-- The web workbench: accounts with roles, login sessions (only a hash of each token is
-- stored), full-text search over tickets and the indexes its pages need to stay fast on
-- 100,000 tickets.
-- SQLite twin of migrations/postgres/0004_users_sessions.sql.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'ml-engineer', 'labeler')),
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX users_username_unique ON users (username_key);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- The ticket browser filters by source and pages by date.
CREATE INDEX tickets_project_source_created ON tickets (project_id, source, created_at DESC, id DESC);
-- Dashboard counts per tag and source without touching the tickets.
CREATE INDEX labels_tag_source ON labels (tag_id, source, present, ticket_id);

-- Full-text search: an external-content FTS5 index kept in step by triggers.
CREATE VIRTUAL TABLE tickets_fts USING fts5 (
    subject, body, content = 'tickets', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER tickets_fts_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO tickets_fts (rowid, subject, body) VALUES (new.id, new.subject, new.body);
END;
CREATE TRIGGER tickets_fts_delete AFTER DELETE ON tickets BEGIN
    INSERT INTO tickets_fts (tickets_fts, rowid, subject, body) VALUES ('delete', old.id, old.subject, old.body);
END;
CREATE TRIGGER tickets_fts_update AFTER UPDATE OF subject, body ON tickets BEGIN
    INSERT INTO tickets_fts (tickets_fts, rowid, subject, body) VALUES ('delete', old.id, old.subject, old.body);
    INSERT INTO tickets_fts (rowid, subject, body) VALUES (new.id, new.subject, new.body);
END;
INSERT INTO tickets_fts (tickets_fts) VALUES ('rebuild');
