-- Grants: what a user, or every member of a named role, may do with which configs.
-- A scope is a namespace, group and data id, each a name or a pattern with `*`.

CREATE TABLE grants (
    subject_kind    VARCHAR(8) NOT NULL,
    subject         VARCHAR(64) NOT NULL,
    namespace       VARCHAR(128) NOT NULL,
    group_pattern   VARCHAR(128) NOT NULL,
    data_id_pattern VARCHAR(256) NOT NULL,
    level           VARCHAR(8) NOT NULL,
    created_at      BIGINT NOT NULL,
    created_by      VARCHAR(64) NOT NULL,
    PRIMARY KEY (subject_kind, subject, namespace, group_pattern, data_id_pattern)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE role_members (
    role       VARCHAR(64) NOT NULL,
    username   VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (role, username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Before grants, every user could read and write every namespace. An upgrade changes
-- nobody's access: each existing user keeps exactly that, as a grant an admin can narrow.
INSERT INTO grants (subject_kind, subject, namespace, group_pattern, data_id_pattern,
                    level, created_at, created_by)
SELECT 'user', username, '*', '*', '*', 'write', created_at, 'upgrade'
FROM users WHERE role = 'user';
