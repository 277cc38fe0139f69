-- Webhooks: subscriptions per namespace, and one delivery row per event and
-- subscription. The change log is the outbox: it is written in the change's own
-- transaction, and `cluster_state.webhook_seq` is how far it has been turned into
-- deliveries. `history.surface` keeps the surface each change came through, for the
-- events' payloads.

ALTER TABLE history ADD COLUMN surface TEXT NOT NULL DEFAULT '';
ALTER TABLE cluster_state ADD COLUMN webhook_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE webhooks (
    id         BIGSERIAL PRIMARY KEY,
    namespace  TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL DEFAULT '',
    grp        TEXT NOT NULL DEFAULT '',
    data_id    TEXT NOT NULL DEFAULT '',
    after_seq  BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX webhooks_namespace ON webhooks (namespace);

CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    webhook_id      BIGINT NOT NULL,
    seq             BIGINT NOT NULL,
    event           TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    grp             TEXT NOT NULL,
    data_id         TEXT NOT NULL,
    md5             TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    response_code   INTEGER NULL,
    error           TEXT NOT NULL DEFAULT '',
    latency_ms      BIGINT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (webhook_id, seq)
);

CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, id);
