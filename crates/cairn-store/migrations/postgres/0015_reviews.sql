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
    id            BIGSERIAL PRIMARY KEY,
    namespace     TEXT NOT NULL,
    grp           TEXT NOT NULL,
    data_id       TEXT NOT NULL,
    op            TEXT NOT NULL,
    content       TEXT NOT NULL,
    md5           TEXT NOT NULL,
    format        TEXT NULL,
    description   TEXT NULL,
    tags          TEXT NULL,
    marked_sensitive INTEGER NULL,
    base_md5      TEXT NOT NULL,
    base_revision BIGINT NOT NULL,
    status        TEXT NOT NULL,
    author        TEXT NOT NULL,
    comment       TEXT NOT NULL,
    reviewer      TEXT NOT NULL DEFAULT '',
    released      BIGINT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE INDEX change_requests_status ON change_requests (namespace, status, id);

CREATE TABLE change_request_events (
    id         BIGSERIAL PRIMARY KEY,
    request_id BIGINT NOT NULL,
    event      TEXT NOT NULL,
    actor      TEXT NOT NULL,
    comment    TEXT NOT NULL,
    at         BIGINT NOT NULL
);

CREATE INDEX change_request_events_request ON change_request_events (request_id, id);
