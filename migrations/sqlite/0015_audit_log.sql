-- The audit log (issue 13): who promoted, rolled back, created or revoked keys, changed the
-- taxonomy, accounts, connectors or outgoing webhooks, and when. Append-only. No foreign
-- keys on purpose: an entry outlives the project, key or account it names.
-- SQLite twin of migrations/postgres/0015_audit_log.sql.

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    -- user:<username>, api-key:<key id>, cli, or a job's name; never a secret.
    actor      TEXT NOT NULL,
    -- The username, key name or name behind actor, for people reading the log.
    actor_name TEXT NOT NULL,
    -- model.promote, key.create, tag.rename, user.role, … (datasets::audit::AuditAction).
    action     TEXT NOT NULL,
    project_id INTEGER,
    target     TEXT NOT NULL,
    details    TEXT NOT NULL
);
-- The page and the API list newest first, filtered by project, action or actor.
CREATE INDEX audit_log_project ON audit_log (project_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
