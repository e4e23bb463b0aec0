-- API keys carry scopes (issue 13): a project key lists what it may do (`tag,read,label,
-- train,admin`), and an instance-admin key (no project, no scopes) creates and lists
-- projects. Keys made before this keep every scope, so their holders lose nothing.
-- Twin of migrations/sqlite/0008_api_key_scopes.sql.

ALTER TABLE api_keys ALTER COLUMN project_id DROP NOT NULL;
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'tag,read,label,train,admin';
ALTER TABLE api_keys ALTER COLUMN scopes DROP DEFAULT;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_fit_owner
    CHECK ((project_id IS NULL) = (scopes = ''));
