-- Cairn's schema on PostgreSQL. Times are Unix milliseconds (UTC).

CREATE TABLE namespaces (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

INSERT INTO namespaces (name, description, created_at)
VALUES ('public', 'The default namespace', 0);

-- One row per change, in commit order: every write transaction first locks the single
-- row of write_lock, so sequences are taken and committed in the same order.
CREATE TABLE change_log (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace  TEXT NOT NULL,
    grp        TEXT NOT NULL,
    data_id    TEXT NOT NULL,
    op         TEXT NOT NULL,
    md5        TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE write_lock (id INTEGER PRIMARY KEY);
INSERT INTO write_lock (id) VALUES (1);

CREATE TABLE configs (
    namespace   TEXT NOT NULL REFERENCES namespaces (name),
    grp         TEXT NOT NULL,
    data_id     TEXT NOT NULL,
    content     TEXT NOT NULL,
    format      TEXT NOT NULL,
    md5         TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (namespace, grp, data_id)
);

CREATE TABLE history (
    revision    BIGINT PRIMARY KEY,
    namespace   TEXT NOT NULL,
    grp         TEXT NOT NULL,
    data_id     TEXT NOT NULL,
    op          TEXT NOT NULL,
    content     TEXT NOT NULL,
    format      TEXT NOT NULL,
    md5         TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '',
    operator    TEXT NOT NULL,
    source      TEXT NOT NULL DEFAULT '',
    comment     TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE INDEX history_by_key ON history (namespace, grp, data_id, revision DESC);

CREATE TABLE users (
    username            TEXT PRIMARY KEY,
    password_hash       TEXT NOT NULL,
    role                TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL
);

CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    applied_seq  BIGINT NOT NULL
);

CREATE TABLE cluster_state (
    id             INTEGER PRIMARY KEY,
    pruned_through BIGINT NOT NULL
);

INSERT INTO cluster_state (id, pruned_through) VALUES (1, 0);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
