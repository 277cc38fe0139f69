-- Apollo reads are signed unless a namespace names the apps whose unsigned reads it
-- serves; an access key may sign for some namespaces (Apollo envs) only.

ALTER TABLE namespaces ADD COLUMN apollo_anonymous TEXT NOT NULL DEFAULT '';
ALTER TABLE access_keys ADD COLUMN namespaces TEXT NOT NULL DEFAULT '';
