-- Each namespace's own bounds: quotas on what it stores and how much history it keeps.
-- NULL follows the node's default; 0 is unlimited.

ALTER TABLE namespaces ADD COLUMN max_configs INTEGER NULL;
ALTER TABLE namespaces ADD COLUMN max_config_bytes INTEGER NULL;
ALTER TABLE namespaces ADD COLUMN max_total_bytes INTEGER NULL;
ALTER TABLE namespaces ADD COLUMN history_max_revisions INTEGER NULL;
ALTER TABLE namespaces ADD COLUMN history_max_days INTEGER NULL;
