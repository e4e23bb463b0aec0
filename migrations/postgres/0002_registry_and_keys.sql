-- The model registry (exactly one promoted version per project, every promotion and rollback
-- recorded with who and when) and per-project API keys (only a hash is stored).

CREATE UNIQUE INDEX model_versions_one_promoted ON model_versions (project_id) WHERE status = 'promoted';

CREATE TABLE model_promotions (
    id                  BIGSERIAL PRIMARY KEY,
    project_id          BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    version_id          BIGINT NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
    previous_version_id BIGINT REFERENCES model_versions (id) ON DELETE SET NULL,
    action              TEXT NOT NULL CHECK (action IN ('promote', 'rollback')),
    actor               TEXT NOT NULL,
    at                  TIMESTAMPTZ NOT NULL
);
CREATE INDEX model_promotions_project ON model_promotions (project_id, id DESC);

CREATE TABLE api_keys (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL UNIQUE,
    key_hash    TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
