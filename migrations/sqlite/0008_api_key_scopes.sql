-- API keys carry scopes (issue 13): a project key lists what it may do (`tag,read,label,
-- train,admin`), and an instance-admin key (no project, no scopes) creates and lists
-- projects. Keys made before this keep every scope, so their holders lose nothing.
-- SQLite twin of migrations/postgres/0008_api_key_scopes.sql; SQLite cannot drop a NOT NULL,
-- so the table is rebuilt with its rows and ids.

CREATE TABLE api_keys_scoped (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL UNIQUE,
    key_hash    TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,
    CHECK ((project_id IS NULL) = (scopes = ''))
);

INSERT INTO api_keys_scoped (id, project_id, name, prefix, key_hash, scopes, created_at, revoked_at)
SELECT id, project_id, name, prefix, key_hash, 'tag,read,label,train,admin', created_at, revoked_at
FROM api_keys;

DROP TABLE api_keys;
ALTER TABLE api_keys_scoped RENAME TO api_keys;
