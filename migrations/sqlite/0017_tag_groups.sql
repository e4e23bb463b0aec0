-- Tag groups (issue 18): a project's taxonomy is split into groups, each single-choice (a
-- ticket gets at most one of its tags: Type, Priority) or multi-choice (Topics). Every
-- project has exactly one default group, where tags go unless a group is named; existing
-- projects get theirs here, holding all their tags, single-choice exactly when the project
-- is single-label, so a project that never makes a group behaves as before.
-- name_key is the name folded to lower case in Rust, as for tags.
-- SQLite twin of migrations/postgres/0017_tag_groups.sql.

CREATE TABLE tag_groups (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    choice      TEXT NOT NULL CHECK (choice IN ('single', 'multi')),
    position    INTEGER NOT NULL,
    is_default  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX tag_groups_project_name_unique ON tag_groups (project_id, name_key);
CREATE UNIQUE INDEX tag_groups_one_default ON tag_groups (project_id) WHERE is_default;

INSERT INTO tag_groups (project_id, name, name_key, choice, position, is_default)
SELECT id, 'Tags', 'tags', label_mode, 0, TRUE FROM projects;

-- SQLite adds a column with a foreign key only when its default is NULL, so the column is
-- nullable in the schema; the trigger below fills it on every insert, and the store never
-- writes NULL.
ALTER TABLE tags ADD COLUMN group_id INTEGER REFERENCES tag_groups (id);
UPDATE tags SET group_id = (SELECT g.id FROM tag_groups g
                            WHERE g.project_id = tags.project_id AND g.is_default);
CREATE INDEX tags_group ON tags (group_id);

-- Every new project gets its default group, however the project row was written.
CREATE TRIGGER projects_default_tag_group AFTER INSERT ON projects
BEGIN
    INSERT INTO tag_groups (project_id, name, name_key, choice, position, is_default)
    VALUES (NEW.id, 'Tags', 'tags', NEW.label_mode, 0, TRUE);
END;

-- A tag written without a group joins the project's default group.
CREATE TRIGGER tags_default_group AFTER INSERT ON tags WHEN NEW.group_id IS NULL
BEGIN
    UPDATE tags SET group_id = (SELECT g.id FROM tag_groups g
                                WHERE g.project_id = NEW.project_id AND g.is_default)
    WHERE id = NEW.id;
END;
