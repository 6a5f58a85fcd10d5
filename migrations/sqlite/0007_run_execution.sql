-- Runs execute: the view shows what each step produced, the failure reason, and the
-- current step and attempt.
ALTER TABLE runs_view ADD COLUMN outputs text NOT NULL DEFAULT '[]';
ALTER TABLE runs_view ADD COLUMN failure_reason text;
ALTER TABLE runs_view ADD COLUMN current_step bigint NOT NULL DEFAULT 0;
ALTER TABLE runs_view ADD COLUMN attempt bigint NOT NULL DEFAULT 0;
