-- The console lists runs by status (running, failed …), newest first.
CREATE INDEX runs_view_by_status ON runs_view (status, id);
