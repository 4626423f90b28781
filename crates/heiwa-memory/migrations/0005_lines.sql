-- Citations into source code: the lines a chunk covers (NULL for other documents).
ALTER TABLE chunk ADD COLUMN line_start INT;
ALTER TABLE chunk ADD COLUMN line_end INT;
