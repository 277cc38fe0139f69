-- Gray releases: at most one per config, removed with the config.

CREATE TABLE gray_releases (
    namespace  TEXT NOT NULL,
    grp        TEXT NOT NULL,
    data_id    TEXT NOT NULL,
    content    TEXT NOT NULL,
    format     TEXT NOT NULL,
    md5        TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    ips        TEXT NOT NULL,
    labels     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, grp, data_id)
);
