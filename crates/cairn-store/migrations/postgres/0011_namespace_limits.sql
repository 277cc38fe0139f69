-- Each namespace's own bounds: quotas on what it stores and how much history it keeps.
-- NULL follows the node's default; 0 is unlimited.

ALTER TABLE namespaces ADD COLUMN max_configs BIGINT NULL;
ALTER TABLE namespaces ADD COLUMN max_config_bytes BIGINT NULL;
ALTER TABLE namespaces ADD COLUMN max_total_bytes BIGINT NULL;
ALTER TABLE namespaces ADD COLUMN history_max_revisions BIGINT NULL;
ALTER TABLE namespaces ADD COLUMN history_max_days BIGINT NULL;
