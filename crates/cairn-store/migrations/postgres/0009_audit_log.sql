-- The audit log: every write, administrative act, login and refusal, append-only.
-- `md5_before` is the main content's md5 before a config change, `md5_after` what the
-- change published (the gray content for a gray release; empty for a deletion).

CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    source     TEXT NOT NULL,
    surface    TEXT NOT NULL,
    action     TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    target     TEXT NOT NULL,
    result     TEXT NOT NULL,
    md5_before TEXT,
    md5_after  TEXT,
    detail     TEXT NOT NULL
);

CREATE INDEX audit_log_at ON audit_log (at);
