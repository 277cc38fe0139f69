-- Webhooks: subscriptions per namespace, and one delivery row per event and
-- subscription. The change log is the outbox: it is written in the change's own
-- transaction, and `cluster_state.webhook_seq` is how far it has been turned into
-- deliveries. `history.surface` keeps the surface each change came through, for the
-- events' payloads.

ALTER TABLE history ADD COLUMN surface VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE cluster_state ADD COLUMN webhook_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE webhooks (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    namespace  VARCHAR(128) NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     VARCHAR(512) NOT NULL DEFAULT '',
    grp        VARCHAR(128) NOT NULL DEFAULT '',
    data_id    VARCHAR(256) NOT NULL DEFAULT '',
    after_seq  BIGINT NOT NULL,
    created_by VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    INDEX webhooks_namespace (namespace)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE webhook_deliveries (
    id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    webhook_id      BIGINT NOT NULL,
    seq             BIGINT NOT NULL,
    event           VARCHAR(32) NOT NULL,
    namespace       VARCHAR(128) NOT NULL,
    grp             VARCHAR(128) NOT NULL,
    data_id         VARCHAR(256) NOT NULL,
    md5             VARCHAR(64) NOT NULL,
    status          VARCHAR(16) NOT NULL,
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    response_code   INT NULL,
    error           TEXT NOT NULL,
    latency_ms      BIGINT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE KEY webhook_deliveries_event (webhook_id, seq),
    INDEX webhook_deliveries_status (status, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
