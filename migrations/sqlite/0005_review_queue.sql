-- The review queue (issue 6): the tickets the active-learning score job ranked for people
-- to label, with the reason for each, and the leases that keep two labellers apart.
-- Lease expiry is kept as Unix milliseconds so both databases compare it as a number.
-- SQLite twin of migrations/postgres/0005_review_queue.sql.

CREATE TABLE review_queue (
    ticket_id        INTEGER PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
    project_id       INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    rank             INTEGER NOT NULL,
    score            REAL NOT NULL,
    strategy         TEXT NOT NULL,
    reason           TEXT NOT NULL,
    leased_by        TEXT,
    lease_expires_ms INTEGER,
    -- The last person who gave the ticket back: they are not handed it again at once.
    skipped_by       TEXT
);
CREATE INDEX review_queue_project_rank ON review_queue (project_id, rank);

-- One row per project: when the queue was last scored and the newest label event then, so
-- "labels since the last scoring" is a count of later events (no clock comparison).
CREATE TABLE review_queue_scorings (
    project_id       INTEGER PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    scored_at        TEXT NOT NULL,
    entries          INTEGER NOT NULL,
    last_label_event INTEGER NOT NULL
);

-- Every answer a person gave a ticket, whole (tag names as a JSON list, empty for "none of
-- these tags"): who said what, which agreement (kappa) between labellers is computed from,
-- and the mark that a ticket was reviewed even when the answer added no label row.
CREATE TABLE label_submissions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    set_by      TEXT NOT NULL,
    tags        TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX label_submissions_ticket ON label_submissions (ticket_id, id);
