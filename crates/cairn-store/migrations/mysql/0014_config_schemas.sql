-- JSON Schemas attached to configs: to one config, or to every config whose group and
-- data id match wildcards, in a namespace. `version` counts the schema's changes; each
-- change is kept in config_schema_history (an empty body marks a removal).

CREATE TABLE config_schemas (
    namespace  VARCHAR(128) NOT NULL,
    grp        VARCHAR(128) NOT NULL,
    data_id    VARCHAR(256) NOT NULL,
    body       LONGTEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_by VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_by VARCHAR(64) NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, grp, data_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE config_schema_history (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    namespace  VARCHAR(128) NOT NULL,
    grp        VARCHAR(128) NOT NULL,
    data_id    VARCHAR(256) NOT NULL,
    version    BIGINT NOT NULL,
    op         VARCHAR(16) NOT NULL,
    body       LONGTEXT NOT NULL,
    operator   VARCHAR(64) NOT NULL,
    comment    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    INDEX config_schema_history_key (namespace, grp, data_id, version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
