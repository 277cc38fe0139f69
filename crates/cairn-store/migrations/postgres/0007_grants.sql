-- Grants: what a user, or every member of a named role, may do with which configs.
-- A scope is a namespace, group and data id, each a name or a pattern with `*`.

CREATE TABLE grants (
    subject_kind    TEXT NOT NULL,
    subject         TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    group_pattern   TEXT NOT NULL,
    data_id_pattern TEXT NOT NULL,
    level           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    PRIMARY KEY (subject_kind, subject, namespace, group_pattern, data_id_pattern)
);

CREATE TABLE role_members (
    role       TEXT NOT NULL,
    username   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (role, username)
);

-- Before grants, every user could read and write every namespace. An upgrade changes
-- nobody's access: each existing user keeps exactly that, as a grant an admin can narrow.
INSERT INTO grants (subject_kind, subject, namespace, group_pattern, data_id_pattern,
                    level, created_at, created_by)
SELECT 'user', username, '*', '*', '*', 'write', created_at, 'upgrade'
FROM users WHERE role = 'user';
