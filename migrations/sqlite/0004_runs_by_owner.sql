-- Users list their own runs, newest first.
CREATE INDEX runs_view_by_owner ON runs_view (owner, id);
