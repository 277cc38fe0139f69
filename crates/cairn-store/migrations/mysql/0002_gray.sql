-- Gray releases: at most one per config, removed with the config.

CREATE TABLE gray_releases (
    namespace  VARCHAR(128) NOT NULL,
    grp        VARCHAR(128) NOT NULL,
    data_id    VARCHAR(256) NOT NULL,
    content    LONGTEXT NOT NULL,
    format     VARCHAR(16) NOT NULL,
    md5        VARCHAR(32) NOT NULL,
    revision   BIGINT NOT NULL,
    ips        TEXT NOT NULL,
    labels     TEXT NOT NULL,
    created_by VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, grp, data_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
