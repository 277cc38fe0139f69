-- A config marked sensitive: its content is shown only to callers with read-secret.

ALTER TABLE configs ADD COLUMN marked_sensitive INTEGER NOT NULL DEFAULT 0;
