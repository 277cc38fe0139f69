-- The node registry, change-log pruning state and shared secrets, as on the shared
-- backends, so that every backend has one schema.

CREATE TABLE nodes (
    id           TEXT PRIMARY KEY NOT NULL,
    address      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    applied_seq  INTEGER NOT NULL
);

CREATE TABLE cluster_state (
    id             INTEGER PRIMARY KEY NOT NULL,
    pruned_through INTEGER NOT NULL
);

INSERT INTO cluster_state (id, pruned_through) VALUES (1, 0);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
