-- A file's size and modification time when it was stored: a rescan skips a
-- file whose stamp is unchanged without reading it (NULL: not known yet).
ALTER TABLE document ADD COLUMN file_size BIGINT;
ALTER TABLE document ADD COLUMN file_mtime_ns BIGINT;
