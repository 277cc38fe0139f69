-- Access keys of Apollo apps: requests of an app with an enabled key must be signed.

CREATE TABLE access_keys (
    app_id     VARCHAR(128) NOT NULL,
    id         VARCHAR(64) NOT NULL,
    secret     VARCHAR(128) NOT NULL,
    enabled    INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
