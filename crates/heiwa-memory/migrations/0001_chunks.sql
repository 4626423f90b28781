-- Local memory: documents and their embedded chunks, per tenant.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE document (
    id              BIGSERIAL PRIMARY KEY,
    tenant_identity TEXT NOT NULL,
    path            TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    ingested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_identity, path)
);

CREATE TABLE chunk (
    id              BIGSERIAL PRIMARY KEY,
    document_id     BIGINT REFERENCES document (id) ON DELETE CASCADE,
    tenant_identity TEXT NOT NULL,
    position        INT NOT NULL DEFAULT 0,
    content         TEXT NOT NULL,
    embedding       vector(384) NOT NULL,
    content_tsv     tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);

CREATE INDEX chunk_embedding_hnsw ON chunk USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64);
CREATE INDEX chunk_content_tsv ON chunk USING gin (content_tsv);
CREATE INDEX chunk_tenant ON chunk (tenant_identity);
