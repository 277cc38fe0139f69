-- Service tokens: long-lived credentials for applications and CI, scoped to namespaces
-- and levels. Only a digest of each token is kept; a revoked token's row is removed.

CREATE TABLE service_tokens (
    name         TEXT NOT NULL PRIMARY KEY,
    digest       TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
