-- The dashboard's and the taxonomy page's figures kept current on write (issue 7), so the
-- pages read a few hundred summary rows instead of every label of the project.
-- Triggers keep them in step inside the transaction that changes labels or tickets, whatever
-- code path wrote (web, API, import, jobs), so no caller can forget.
-- SQLite twin of migrations/postgres/0006_dashboard_counts.sql. SQLite runs row triggers
-- right after each row's change and one writer at a time, so each trigger works out the
-- exact change from the rows of the one (ticket, tag) it touched and adds it in place.

-- Per tag and day the ticket was created (UTC, YYYY-MM-DD):
--   tickets      tickets carrying the tag: a present label from some source and no
--                person's "not this tag";
--   auto_applied tickets with a model label on the tag;
--   confirmed    … which a person also gave the tag;
--   corrected    … from which a person removed it.
CREATE TABLE tag_day_counts (
    project_id   INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    tag_id       INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    day          TEXT NOT NULL,
    tickets      INTEGER NOT NULL DEFAULT 0,
    auto_applied INTEGER NOT NULL DEFAULT 0,
    confirmed    INTEGER NOT NULL DEFAULT 0,
    corrected    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, day, tag_id)
);
CREATE INDEX tag_day_counts_tag ON tag_day_counts (tag_id);

-- Per project and day: tickets created, of which a model tagged (any tag) and a person
-- labelled (any answer, including "not this tag").
CREATE TABLE project_day_counts (
    project_id     INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    day            TEXT NOT NULL,
    tickets        INTEGER NOT NULL DEFAULT 0,
    auto_tagged    INTEGER NOT NULL DEFAULT 0,
    human_labelled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, day)
);

-- `+tag_id` keeps SQLite on the primary key (ticket_id, tag_id, source): without statistics
-- it would pick labels_tag_source and read every label of the tag for each row written.
-- A (ticket, tag) key's flags from a set of its label rows, "after" minus "before":
-- p = some source present, hr = a person removed it, hp = a person gave it, mp = a model gave it.
-- carries = p AND NOT hr; confirmed = mp AND hp; corrected = mp AND hr.

CREATE TRIGGER labels_counts_insert AFTER INSERT ON labels BEGIN
    INSERT INTO tag_day_counts (project_id, tag_id, day, tickets, auto_applied, confirmed, corrected)
    SELECT t.project_id, NEW.tag_id, substr(t.created_at, 1, 10),
           a.p * (1 - a.hr) - b.p * (1 - b.hr), a.mp - b.mp, a.mp * a.hp - b.mp * b.hp, a.mp * a.hr - b.mp * b.hr
    FROM tickets t,
         (SELECT COALESCE(MAX(present <> 0), 0) AS p,
                 COALESCE(MAX(source = 'human' AND present = 0), 0) AS hr,
                 COALESCE(MAX(source = 'human' AND present <> 0), 0) AS hp,
                 COALESCE(MAX(source = 'model' AND present <> 0), 0) AS mp
          FROM labels WHERE ticket_id = NEW.ticket_id AND +tag_id = NEW.tag_id) a,
         (SELECT COALESCE(MAX(present <> 0), 0) AS p,
                 COALESCE(MAX(source = 'human' AND present = 0), 0) AS hr,
                 COALESCE(MAX(source = 'human' AND present <> 0), 0) AS hp,
                 COALESCE(MAX(source = 'model' AND present <> 0), 0) AS mp
          FROM labels WHERE ticket_id = NEW.ticket_id AND +tag_id = NEW.tag_id AND source <> NEW.source) b
    WHERE t.id = NEW.ticket_id AND EXISTS (SELECT 1 FROM tags WHERE id = NEW.tag_id)
      AND (a.p <> b.p OR a.hr <> b.hr OR a.hp <> b.hp OR a.mp <> b.mp)
    ON CONFLICT (project_id, day, tag_id) DO UPDATE SET tickets = tickets + excluded.tickets,
        auto_applied = auto_applied + excluded.auto_applied, confirmed = confirmed + excluded.confirmed,
        corrected = corrected + excluded.corrected;
    INSERT INTO project_day_counts (project_id, day, auto_tagged, human_labelled)
    SELECT t.project_id, substr(t.created_at, 1, 10), a.m - b.m, a.h - b.h
    FROM tickets t,
         (SELECT COALESCE(MAX(source = 'model' AND present <> 0), 0) AS m, COALESCE(MAX(source = 'human'), 0) AS h
          FROM labels WHERE ticket_id = NEW.ticket_id) a,
         (SELECT COALESCE(MAX(source = 'model' AND present <> 0), 0) AS m, COALESCE(MAX(source = 'human'), 0) AS h
          FROM labels WHERE ticket_id = NEW.ticket_id AND NOT (tag_id = NEW.tag_id AND source = NEW.source)) b
    WHERE t.id = NEW.ticket_id AND (a.m <> b.m OR a.h <> b.h)
    ON CONFLICT (project_id, day) DO UPDATE SET auto_tagged = auto_tagged + excluded.auto_tagged,
        human_labelled = human_labelled + excluded.human_labelled;
END;

CREATE TRIGGER labels_counts_delete AFTER DELETE ON labels BEGIN
    INSERT INTO tag_day_counts (project_id, tag_id, day, tickets, auto_applied, confirmed, corrected)
    SELECT t.project_id, OLD.tag_id, substr(t.created_at, 1, 10),
           a.p * (1 - a.hr) - b.p * (1 - b.hr), a.mp - b.mp, a.mp * a.hp - b.mp * b.hp, a.mp * a.hr - b.mp * b.hr
    FROM tickets t,
         (SELECT COALESCE(MAX(present <> 0), 0) AS p,
                 COALESCE(MAX(source = 'human' AND present = 0), 0) AS hr,
                 COALESCE(MAX(source = 'human' AND present <> 0), 0) AS hp,
                 COALESCE(MAX(source = 'model' AND present <> 0), 0) AS mp
          FROM labels WHERE ticket_id = OLD.ticket_id AND +tag_id = OLD.tag_id) a,
         (SELECT COALESCE(MAX(present <> 0), 0) AS p,
                 COALESCE(MAX(source = 'human' AND present = 0), 0) AS hr,
                 COALESCE(MAX(source = 'human' AND present <> 0), 0) AS hp,
                 COALESCE(MAX(source = 'model' AND present <> 0), 0) AS mp
          FROM (SELECT source, present FROM labels WHERE ticket_id = OLD.ticket_id AND +tag_id = OLD.tag_id
                UNION ALL SELECT OLD.source, OLD.present)) b
    WHERE t.id = OLD.ticket_id AND EXISTS (SELECT 1 FROM tags WHERE id = OLD.tag_id)
      AND (a.p <> b.p OR a.hr <> b.hr OR a.hp <> b.hp OR a.mp <> b.mp)
    ON CONFLICT (project_id, day, tag_id) DO UPDATE SET tickets = tickets + excluded.tickets,
        auto_applied = auto_applied + excluded.auto_applied, confirmed = confirmed + excluded.confirmed,
        corrected = corrected + excluded.corrected;
    INSERT INTO project_day_counts (project_id, day, auto_tagged, human_labelled)
    SELECT t.project_id, substr(t.created_at, 1, 10), a.m - b.m, a.h - b.h
    FROM tickets t,
         (SELECT COALESCE(MAX(source = 'model' AND present <> 0), 0) AS m, COALESCE(MAX(source = 'human'), 0) AS h
          FROM labels WHERE ticket_id = OLD.ticket_id) a,
         (SELECT COALESCE(MAX(source = 'model' AND present <> 0), 0) AS m, COALESCE(MAX(source = 'human'), 0) AS h
          FROM (SELECT source, present FROM labels WHERE ticket_id = OLD.ticket_id
                UNION ALL SELECT OLD.source, OLD.present)) b
    WHERE t.id = OLD.ticket_id AND (a.m <> b.m OR a.h <> b.h)
    ON CONFLICT (project_id, day) DO UPDATE SET auto_tagged = auto_tagged + excluded.auto_tagged,
        human_labelled = human_labelled + excluded.human_labelled;
END;

-- An update may move a row to another ticket, tag or source (merging tags does): the old
-- key loses the old row and gains the new one when it is the same key; a different new key
-- gains the new row.
CREATE TRIGGER labels_counts_update AFTER UPDATE ON labels BEGIN
    INSERT INTO tag_day_counts (project_id, tag_id, day, tickets, auto_applied, confirmed, corrected)
    SELECT t.project_id, OLD.tag_id, substr(t.created_at, 1, 10),
           a.p * (1 - a.hr) - b.p * (1 - b.hr), a.mp - b.mp, a.mp * a.hp - b.mp * b.hp, a.mp * a.hr - b.mp * b.hr
    FROM tickets t,
         (SELECT COALESCE(MAX(present <> 0), 0) AS p,
                 COALESCE(MAX(source = 'human' AND present = 0), 0) AS hr,
                 COALESCE(MAX(source = 'human' AND present <> 0), 0) AS hp,
                 COALESCE(MAX(source = 'model' AND present <> 0), 0) AS mp
          FROM labels WHERE ticket_id = OLD.ticket_id AND +tag_id = OLD.tag_id) a,
         (SELECT COALESCE(MAX(present <> 0), 0) AS p,
                 COALESCE(MAX(source = 'human' AND present = 0), 0) AS hr,
                 COALESCE(MAX(source = 'human' AND present <> 0), 0) AS hp,
                 COALESCE(MAX(source = 'model' AND present <> 0), 0) AS mp
          FROM (SELECT source, present FROM labels WHERE ticket_id = OLD.ticket_id AND +tag_id = OLD.tag_id
                  AND NOT (ticket_id = NEW.ticket_id AND tag_id = NEW.tag_id AND source = NEW.source)
                UNION ALL SELECT OLD.source, OLD.present)) b
    WHERE t.id = OLD.ticket_id AND EXISTS (SELECT 1 FROM tags WHERE id = OLD.tag_id)
      AND (a.p <> b.p OR a.hr <> b.hr OR a.hp <> b.hp OR a.mp <> b.mp)
    ON CONFLICT (project_id, day, tag_id) DO UPDATE SET tickets = tickets + excluded.tickets,
        auto_applied = auto_applied + excluded.auto_applied, confirmed = confirmed + excluded.confirmed,
        corrected = corrected + excluded.corrected;
    INSERT INTO tag_day_counts (project_id, tag_id, day, tickets, auto_applied, confirmed, corrected)
    SELECT t.project_id, NEW.tag_id, substr(t.created_at, 1, 10),
           a.p * (1 - a.hr) - b.p * (1 - b.hr), a.mp - b.mp, a.mp * a.hp - b.mp * b.hp, a.mp * a.hr - b.mp * b.hr
    FROM tickets t,
         (SELECT COALESCE(MAX(present <> 0), 0) AS p,
                 COALESCE(MAX(source = 'human' AND present = 0), 0) AS hr,
                 COALESCE(MAX(source = 'human' AND present <> 0), 0) AS hp,
                 COALESCE(MAX(source = 'model' AND present <> 0), 0) AS mp
          FROM labels WHERE ticket_id = NEW.ticket_id AND +tag_id = NEW.tag_id) a,
         (SELECT COALESCE(MAX(present <> 0), 0) AS p,
                 COALESCE(MAX(source = 'human' AND present = 0), 0) AS hr,
                 COALESCE(MAX(source = 'human' AND present <> 0), 0) AS hp,
                 COALESCE(MAX(source = 'model' AND present <> 0), 0) AS mp
          FROM labels WHERE ticket_id = NEW.ticket_id AND +tag_id = NEW.tag_id AND source <> NEW.source) b
    WHERE (NEW.ticket_id <> OLD.ticket_id OR NEW.tag_id <> OLD.tag_id)
      AND t.id = NEW.ticket_id AND EXISTS (SELECT 1 FROM tags WHERE id = NEW.tag_id)
      AND (a.p <> b.p OR a.hr <> b.hr OR a.hp <> b.hp OR a.mp <> b.mp)
    ON CONFLICT (project_id, day, tag_id) DO UPDATE SET tickets = tickets + excluded.tickets,
        auto_applied = auto_applied + excluded.auto_applied, confirmed = confirmed + excluded.confirmed,
        corrected = corrected + excluded.corrected;
    INSERT INTO project_day_counts (project_id, day, auto_tagged, human_labelled)
    SELECT t.project_id, substr(t.created_at, 1, 10), a.m - b.m, a.h - b.h
    FROM tickets t,
         (SELECT COALESCE(MAX(source = 'model' AND present <> 0), 0) AS m, COALESCE(MAX(source = 'human'), 0) AS h
          FROM labels WHERE ticket_id = OLD.ticket_id) a,
         (SELECT COALESCE(MAX(source = 'model' AND present <> 0), 0) AS m, COALESCE(MAX(source = 'human'), 0) AS h
          FROM (SELECT source, present FROM labels WHERE ticket_id = OLD.ticket_id
                  AND NOT (ticket_id = NEW.ticket_id AND tag_id = NEW.tag_id AND source = NEW.source)
                UNION ALL SELECT OLD.source, OLD.present)) b
    WHERE t.id = OLD.ticket_id AND (a.m <> b.m OR a.h <> b.h)
    ON CONFLICT (project_id, day) DO UPDATE SET auto_tagged = auto_tagged + excluded.auto_tagged,
        human_labelled = human_labelled + excluded.human_labelled;
    INSERT INTO project_day_counts (project_id, day, auto_tagged, human_labelled)
    SELECT t.project_id, substr(t.created_at, 1, 10), a.m - b.m, a.h - b.h
    FROM tickets t,
         (SELECT COALESCE(MAX(source = 'model' AND present <> 0), 0) AS m, COALESCE(MAX(source = 'human'), 0) AS h
          FROM labels WHERE ticket_id = NEW.ticket_id) a,
         (SELECT COALESCE(MAX(source = 'model' AND present <> 0), 0) AS m, COALESCE(MAX(source = 'human'), 0) AS h
          FROM labels WHERE ticket_id = NEW.ticket_id AND NOT (tag_id = NEW.tag_id AND source = NEW.source)) b
    WHERE NEW.ticket_id <> OLD.ticket_id AND t.id = NEW.ticket_id AND (a.m <> b.m OR a.h <> b.h)
    ON CONFLICT (project_id, day) DO UPDATE SET auto_tagged = auto_tagged + excluded.auto_tagged,
        human_labelled = human_labelled + excluded.human_labelled;
END;

CREATE TRIGGER tickets_counts_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO project_day_counts (project_id, day, tickets) VALUES (NEW.project_id, substr(NEW.created_at, 1, 10), 1)
    ON CONFLICT (project_id, day) DO UPDATE SET tickets = tickets + 1;
END;

-- A ticket's labels go first, while the ticket still tells which day they counted under.
CREATE TRIGGER tickets_counts_delete BEFORE DELETE ON tickets BEGIN
    DELETE FROM labels WHERE ticket_id = OLD.id;
    UPDATE project_day_counts SET tickets = tickets - 1
    WHERE project_id = OLD.project_id AND day = substr(OLD.created_at, 1, 10);
END;

-- The counts file a ticket under its creation day and project, so neither may change.
CREATE TRIGGER tickets_counts_fixed_day BEFORE UPDATE OF created_at, project_id ON tickets
WHEN substr(NEW.created_at, 1, 10) <> substr(OLD.created_at, 1, 10) OR NEW.project_id <> OLD.project_id
BEGIN
    SELECT RAISE(ABORT, 'a ticket''s project and creation day cannot change');
END;

-- The figures of the data already stored (Store::rebuild_dashboard_counts does the same).
INSERT INTO tag_day_counts (project_id, tag_id, day, tickets, auto_applied, confirmed, corrected)
SELECT t.project_id, k.tag_id, substr(t.created_at, 1, 10),
       SUM(k.p * (1 - k.hr)), SUM(k.mp), SUM(k.mp * k.hp), SUM(k.mp * k.hr)
FROM (SELECT ticket_id, tag_id,
             MAX(present <> 0) AS p,
             MAX(source = 'human' AND present = 0) AS hr,
             MAX(source = 'human' AND present <> 0) AS hp,
             MAX(source = 'model' AND present <> 0) AS mp
      FROM labels GROUP BY ticket_id, tag_id) k
JOIN tickets t ON t.id = k.ticket_id
GROUP BY t.project_id, k.tag_id, substr(t.created_at, 1, 10);

INSERT INTO project_day_counts (project_id, day, tickets, auto_tagged, human_labelled)
SELECT t.project_id, substr(t.created_at, 1, 10), COUNT(*),
       SUM(EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = t.id AND l.source = 'model' AND l.present <> 0)),
       SUM(EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = t.id AND l.source = 'human'))
FROM tickets t
GROUP BY t.project_id, substr(t.created_at, 1, 10);
