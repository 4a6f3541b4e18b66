-- How many lines each stored part of a log ends (its newlines), so a page that shows a window
-- of a long log numbers its lines without reading all that comes before. NULL: a part stored
-- before this migration, counted when read.
ALTER TABLE trace_parts ADD COLUMN lines BIGINT;
