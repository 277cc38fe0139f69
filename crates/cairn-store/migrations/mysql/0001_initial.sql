-- Cairn's schema on MySQL / MariaDB. Names use a binary collation because Cairn's names
-- are case-sensitive. Times are Unix milliseconds (UTC).

CREATE TABLE namespaces (
    name        VARCHAR(128) NOT NULL PRIMARY KEY,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO namespaces (name, description, created_at)
VALUES ('public', 'The default namespace', 0);

-- One row per change, in commit order: every write transaction first locks the single
-- row of write_lock, so sequences are taken and committed in the same order.
CREATE TABLE change_log (
    seq        BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    namespace  VARCHAR(128) NOT NULL,
    grp        VARCHAR(128) NOT NULL,
    data_id    VARCHAR(256) NOT NULL,
    op         VARCHAR(16) NOT NULL,
    md5        VARCHAR(32) NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE write_lock (id INT NOT NULL PRIMARY KEY) ENGINE = InnoDB;
INSERT INTO write_lock (id) VALUES (1);

CREATE TABLE configs (
    namespace   VARCHAR(128) NOT NULL,
    grp         VARCHAR(128) NOT NULL,
    data_id     VARCHAR(256) NOT NULL,
    content     LONGTEXT NOT NULL,
    format      VARCHAR(16) NOT NULL,
    md5         VARCHAR(32) NOT NULL,
    revision    BIGINT NOT NULL,
    description TEXT NOT NULL,
    tags        TEXT NOT NULL,
    created_by  VARCHAR(64) NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_by  VARCHAR(64) NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (namespace, grp, data_id),
    FOREIGN KEY (namespace) REFERENCES namespaces (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE history (
    revision    BIGINT NOT NULL PRIMARY KEY,
    namespace   VARCHAR(128) NOT NULL,
    grp         VARCHAR(128) NOT NULL,
    data_id     VARCHAR(256) NOT NULL,
    op          VARCHAR(16) NOT NULL,
    content     LONGTEXT NOT NULL,
    format      VARCHAR(16) NOT NULL,
    md5         VARCHAR(32) NOT NULL,
    description TEXT NOT NULL,
    tags        TEXT NOT NULL,
    operator    VARCHAR(64) NOT NULL,
    source      VARCHAR(64) NOT NULL,
    comment     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    INDEX history_by_key (namespace, grp, data_id, revision)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE users (
    username            VARCHAR(64) NOT NULL PRIMARY KEY,
    password_hash       VARCHAR(255) NOT NULL,
    role                VARCHAR(16) NOT NULL,
    created_at          BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE nodes (
    id           VARCHAR(64) NOT NULL PRIMARY KEY,
    address      VARCHAR(255) NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    applied_seq  BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE cluster_state (
    id             INT NOT NULL PRIMARY KEY,
    pruned_through BIGINT NOT NULL
) ENGINE = InnoDB;

INSERT INTO cluster_state (id, pruned_through) VALUES (1, 0);

CREATE TABLE secrets (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
