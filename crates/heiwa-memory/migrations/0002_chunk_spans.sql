-- Citations: where in its document each chunk's text stands (byte offsets).
ALTER TABLE chunk ADD COLUMN span_start INT NOT NULL DEFAULT 0;
ALTER TABLE chunk ADD COLUMN span_end INT NOT NULL DEFAULT 0;
CREATE INDEX chunk_document ON chunk (document_id);
