-- JSON Schemas attached to configs: to one config, or to every config whose group and
-- data id match wildcards, in a namespace. `version` counts the schema's changes; each
-- change is kept in config_schema_history (an empty body marks a removal).

CREATE TABLE config_schemas (
    namespace  TEXT NOT NULL,
    grp        TEXT NOT NULL,
    data_id    TEXT NOT NULL,
    body       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, grp, data_id)
);

CREATE TABLE config_schema_history (
    id         BIGSERIAL PRIMARY KEY,
    namespace  TEXT NOT NULL,
    grp        TEXT NOT NULL,
    data_id    TEXT NOT NULL,
    version    BIGINT NOT NULL,
    op         TEXT NOT NULL,
    body       TEXT NOT NULL,
    operator   TEXT NOT NULL,
    comment    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX config_schema_history_key ON config_schema_history (namespace, grp, data_id, version);
