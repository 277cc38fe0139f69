-- Room for an access-key secret sealed at rest (about 180 characters), which the
-- other backends' TEXT columns already have.

ALTER TABLE access_keys MODIFY secret VARCHAR(512) NOT NULL;
