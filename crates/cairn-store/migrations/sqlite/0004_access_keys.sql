-- Access keys of Apollo apps: requests of an app with an enabled key must be signed.

CREATE TABLE access_keys (
    app_id     TEXT NOT NULL,
    id         TEXT NOT NULL,
    secret     TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, id)
);
