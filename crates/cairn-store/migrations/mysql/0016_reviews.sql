-- Review before release. A namespace may require it; a change a person proposes there
-- is kept as a change request until a second person approves (it is then released
-- with compare-and-set against the content it was reviewed on) or rejects it. Each
-- step is an event row: the request's timeline, and the identity of its webhook
-- deliveries (a negative `webhook_deliveries.seq`, apart from change-log sequences).
-- A service token may be allowed to publish there without review; an admin's
-- emergency publish is flagged in history.

ALTER TABLE namespaces ADD COLUMN require_review INTEGER NOT NULL DEFAULT 0;
ALTER TABLE service_tokens ADD COLUMN publish_without_review INTEGER NOT NULL DEFAULT 0;
ALTER TABLE history ADD COLUMN emergency INTEGER NOT NULL DEFAULT 0;

CREATE TABLE change_requests (
    id            BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    namespace     VARCHAR(128) NOT NULL,
    grp           VARCHAR(128) NOT NULL,
    data_id       VARCHAR(256) NOT NULL,
    op            VARCHAR(32) NOT NULL,
    content       LONGTEXT NOT NULL,
    md5           VARCHAR(32) NOT NULL,
    format        VARCHAR(32) NULL,
    description   TEXT NULL,
    tags          TEXT NULL,
    marked_sensitive INTEGER NULL,
    base_md5      VARCHAR(32) NOT NULL,
    base_revision BIGINT NOT NULL,
    status        VARCHAR(16) NOT NULL,
    author        VARCHAR(64) NOT NULL,
    comment       TEXT NOT NULL,
    reviewer      VARCHAR(64) NOT NULL DEFAULT '',
    released      BIGINT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    INDEX change_requests_status (namespace, status, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE change_request_events (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    request_id BIGINT NOT NULL,
    event      VARCHAR(32) NOT NULL,
    actor      VARCHAR(64) NOT NULL,
    comment    TEXT NOT NULL,
    at         BIGINT NOT NULL,
    INDEX change_request_events_request (request_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
