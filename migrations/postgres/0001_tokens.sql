-- The tokens, one row each (layout: src/store/sql/mod.rs). Only the SHA-256 hash of a
-- secret is ever stored.
CREATE TABLE pe_tokens (
    uid         TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    -- The name lowercased by the application: what the search matches.
    name_lower  TEXT    NOT NULL,
    description TEXT    NOT NULL,
    -- Space-separated scopes.
    scopes      TEXT    NOT NULL,
    -- NULL: every deployment; else comma-separated names ('' for none).
    deployments TEXT,
    created_s   BIGINT  NOT NULL,
    created_ns  BIGINT  NOT NULL,
    expires_s   BIGINT,
    expires_ns  BIGINT,
    last_used_s BIGINT,
    -- The 32 raw bytes of the secret's SHA-256.
    hash        BYTEA   NOT NULL,
    -- Named: a unique violation is told apart by its constraint's name.
    CONSTRAINT pe_tokens_pkey PRIMARY KEY (uid),
    -- Names are unique in a store: the index enforces it, no caller scans (two replicas
    -- creating one name at once: exactly one commits).
    CONSTRAINT pe_tokens_name_key UNIQUE (name),
    CONSTRAINT pe_tokens_hash_key UNIQUE (hash)
);
-- Listing pages in creation order.
CREATE INDEX pe_tokens_created ON pe_tokens (created_s, created_ns, uid);

-- Flags about the store itself: `first_admin_minted` once a first admin token was stored,
-- so a restart after every token was deleted mints no other.
CREATE TABLE pe_meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
