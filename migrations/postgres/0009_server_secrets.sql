-- Secrets the server keeps for itself, created on first use: the key that signs login-form
-- CSRF tokens. Kept in the database so every replica of the server shares them and they
-- survive restarts.

CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
