-- Cairn's initial schema. Times are Unix milliseconds (UTC) so every backend stores
-- them the same way.

CREATE TABLE namespaces (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

INSERT INTO namespaces (name, description, created_at)
VALUES ('public', 'The default namespace', 0);

-- One row per change, in commit order. `seq` is the revision of the change; nodes of a
-- cluster tail this table to learn of each other's writes.
CREATE TABLE change_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace  TEXT NOT NULL,
    grp        TEXT NOT NULL,
    data_id    TEXT NOT NULL,
    op         TEXT NOT NULL,
    md5        TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The current content of every config.
CREATE TABLE configs (
    namespace   TEXT NOT NULL REFERENCES namespaces (name),
    grp         TEXT NOT NULL,
    data_id     TEXT NOT NULL,
    content     TEXT NOT NULL,
    format      TEXT NOT NULL,
    md5         TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (namespace, grp, data_id)
);

-- Every version of every config, immutable. `revision` equals the change-log `seq`.
CREATE TABLE history (
    revision    INTEGER PRIMARY KEY NOT NULL,
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
    created_at  INTEGER NOT NULL
);

CREATE INDEX history_by_key ON history (namespace, grp, data_id, revision DESC);

CREATE TABLE users (
    username            TEXT PRIMARY KEY NOT NULL,
    password_hash       TEXT NOT NULL,
    role                TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL
);
