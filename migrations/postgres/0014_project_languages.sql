-- The languages a project's model serves (issue 18), as sorted ISO 639-3 codes joined by
-- commas ("deu,eng"). Empty, the default, means the project chose none: every ticket is
-- tagged whatever its language, as before.
ALTER TABLE projects ADD COLUMN languages TEXT NOT NULL DEFAULT '';
