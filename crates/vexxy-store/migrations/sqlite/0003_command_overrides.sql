-- Whether an organisation's jobs may replace the image's command: a run
-- of another command proves nothing about the image's own, so an
-- operator may forbid it (1 = allowed, the default; 0 = forbidden).
ALTER TABLE orgs ADD COLUMN allow_command_override BIGINT NOT NULL DEFAULT 1;
