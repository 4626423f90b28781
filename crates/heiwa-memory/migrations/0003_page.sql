-- Citations into paged documents (PDF): the page a chunk starts on.
ALTER TABLE chunk ADD COLUMN page INT;
