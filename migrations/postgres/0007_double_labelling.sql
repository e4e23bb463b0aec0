-- Double labelling (issue 6): a configurable share of labelled tickets goes to a second,
-- different person, whose independent answer measures agreement; answers that disagree go
-- to an adjudicator. Twin of migrations/sqlite/0007_double_labelling.sql.

-- Per-project review settings; a project without a row double-labels nothing.
CREATE TABLE review_settings (
    project_id         BIGINT PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    double_label_share DOUBLE PRECISION NOT NULL CHECK (double_label_share >= 0 AND double_label_share <= 1)
);

-- A labelled ticket sampled for a second answer. `first_by` never gets it; the lease keeps
-- two second labellers apart like the review queue's does.
CREATE TABLE second_opinions (
    ticket_id        BIGINT PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
    project_id       BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    first_by         TEXT NOT NULL,
    requested_at     TIMESTAMPTZ NOT NULL,
    leased_by        TEXT,
    lease_expires_ms BIGINT,
    -- The last person who gave it back: not handed it again at once.
    skipped_by       TEXT,
    answered_by      TEXT,
    answered_at      TIMESTAMPTZ
);
CREATE INDEX second_opinions_open ON second_opinions (project_id, requested_at) WHERE answered_at IS NULL;

-- What an answer was: a person's own labelling ('answer'), a blind second answer that does
-- not change the labels ('second-opinion'), or an adjudicator's final word ('adjudication',
-- left out of agreement figures).
ALTER TABLE label_submissions ADD COLUMN kind TEXT NOT NULL DEFAULT 'answer'
    CHECK (kind IN ('answer', 'second-opinion', 'adjudication'));
