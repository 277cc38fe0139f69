-- Service tokens: long-lived credentials for applications and CI, scoped to namespaces
-- and levels. Only a digest of each token is kept; a revoked token's row is removed.

CREATE TABLE service_tokens (
    name         VARCHAR(64) NOT NULL PRIMARY KEY,
    digest       VARCHAR(64) NOT NULL UNIQUE,
    scopes       VARCHAR(4096) NOT NULL,
    created_by   VARCHAR(64) NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
