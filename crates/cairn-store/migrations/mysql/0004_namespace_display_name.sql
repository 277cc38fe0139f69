-- A namespace's display name (Nacos's namespaceShowName), apart from its description.

ALTER TABLE namespaces ADD COLUMN display_name VARCHAR(2048) NOT NULL DEFAULT '';
