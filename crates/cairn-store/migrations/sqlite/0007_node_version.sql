-- The Cairn version each node runs, for the cluster view (an older node writes none).

ALTER TABLE nodes ADD COLUMN version TEXT NOT NULL DEFAULT '';
