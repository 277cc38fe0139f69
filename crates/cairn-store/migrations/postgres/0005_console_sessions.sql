-- Console sessions: a browser's login. Kept in the database so that logging out on one
-- node ends the session on every node. Only a digest of the session id is stored.

CREATE TABLE console_sessions (
    id_hash    TEXT NOT NULL PRIMARY KEY,
    username   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
