-- A config marked sensitive: its content is shown only to callers with read-secret.

ALTER TABLE configs ADD COLUMN marked_sensitive INTEGER NOT NULL DEFAULT 0;
-- Each history entry keeps the mark its config had, so an entry written while the
-- config was sensitive stays so after the config is unmarked or deleted.
ALTER TABLE history ADD COLUMN marked_sensitive INTEGER NOT NULL DEFAULT 0;
