-- SQLite twin of migrations/postgres/0016_ticket_entities.sql.
-- Entities stored with the ticket (issue 18): what `datasets::text::entities` finds in a
-- ticket's subject and body, written by every ticket write in the same transaction, so the
-- ticket browser and the API filter by them with an index instead of reading every ticket.

-- A project's glossary: its product and component names, found in tickets as `product`.
CREATE TABLE glossary_terms (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- The order the admin wrote the terms in.
    position   INTEGER NOT NULL,
    term       TEXT NOT NULL,
    -- Lower case, whitespace collapsed: a term is unique in any case.
    term_key   TEXT NOT NULL,
    PRIMARY KEY (project_id, term_key)
);

CREATE TABLE ticket_entities (
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    -- The ticket's project, copied so that the filter's index leads with it.
    project_id INTEGER NOT NULL,
    -- product, exception, error_code, … (datasets::text::entities::EntityKind).
    kind       TEXT NOT NULL,
    -- As found in the ticket (a product: as the glossary spells it).
    value      TEXT NOT NULL,
    -- Lower case: filters match a value in any case.
    value_key  TEXT NOT NULL,
    -- The order the ticket page shows them in: kind by kind, then as they first appear.
    position   INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, kind, value_key)
);
-- "Tickets with this entity" in a project: one index range.
CREATE INDEX ticket_entities_lookup ON ticket_entities (project_id, kind, value_key, ticket_id);

-- Projects whose tickets' entities must be extracted again: every project at this upgrade
-- (its tickets were stored before entities were), and a project whose glossary changed.
-- Servers work through it in the background, `tagger entities rebuild` in the foreground.
-- `generation` grows with every request, so a rebuild that was overtaken by a newer request
-- does not mark it done.
CREATE TABLE entity_rebuilds (
    project_id      INTEGER PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    after_ticket_id INTEGER NOT NULL,
    generation      INTEGER NOT NULL
);
INSERT INTO entity_rebuilds (project_id, after_ticket_id, generation)
SELECT id, 0, 1 FROM projects;
