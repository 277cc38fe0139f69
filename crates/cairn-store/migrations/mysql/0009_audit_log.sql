-- The audit log: every write, administrative act, login and refusal, append-only.
-- `md5_before` is the main content's md5 before a config change, `md5_after` what the
-- change published (the gray content for a gray release; empty for a deletion).

CREATE TABLE audit_log (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      VARCHAR(128) NOT NULL,
    source     VARCHAR(64) NOT NULL,
    surface    VARCHAR(16) NOT NULL,
    action     VARCHAR(32) NOT NULL,
    namespace  VARCHAR(128) NOT NULL,
    target     VARCHAR(600) NOT NULL,
    result     VARCHAR(16) NOT NULL,
    md5_before VARCHAR(32),
    md5_after  VARCHAR(32),
    detail     TEXT NOT NULL,
    INDEX audit_log_at (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
