-- Console sessions: a browser's login. Kept in the database so that logging out on one
-- node ends the session on every node. Only a digest of the session id is stored.

CREATE TABLE console_sessions (
    id_hash    VARCHAR(64) NOT NULL PRIMARY KEY,
    username   VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    INDEX console_sessions_expires (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
