-- Kept in step with postgres/0004_append_checked.sql, which adds the one-round-trip append
-- function of the PostgreSQL writer. SQLite appends in-process under its own write lock and
-- needs no such function: nothing changes here.
SELECT 1;
