-- The review queue (issue 6): the tickets the active-learning score job ranked for people
-- to label, with the reason for each, and the leases that keep two labellers apart.
-- Lease expiry is kept as Unix milliseconds so both databases compare it as a number.


CREATE TABLE review_queue (
    ticket_id        BIGINT PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
    project_id       BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    rank             BIGINT NOT NULL,
    score            REAL NOT NULL,
    strategy         TEXT NOT NULL,
    reason           TEXT NOT NULL,
    leased_by        TEXT,
    lease_expires_ms BIGINT,
    -- The last person who gave the ticket back: they are not handed it again at once.
    skipped_by       TEXT
);
CREATE INDEX review_queue_project_rank ON review_queue (project_id, rank);

-- One row per project: when the queue was last scored and the newest label event then, so
-- "labels since the last scoring" is a count of later events (no clock comparison).
CREATE TABLE review_queue_scorings (
    project_id       BIGINT PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    scored_at        TIMESTAMPTZ NOT NULL,
    entries          BIGINT NOT NULL,
    last_label_event BIGINT NOT NULL
);

-- Every answer a person gave a ticket, whole (tag names as a JSON list, empty for "none of
-- these tags"): who said what, which agreement (kappa) between labellers is computed from,
-- and the mark that a ticket was reviewed even when the answer added no label row.
CREATE TABLE label_submissions (
    id          BIGSERIAL PRIMARY KEY,
    ticket_id   BIGINT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    set_by      TEXT NOT NULL,
    tags        JSONB NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX label_submissions_ticket ON label_submissions (ticket_id, id);
