-- The tokens, one row each (layout: src/store/sql/mod.rs). Only the SHA-256 hash of a
-- secret is ever stored.
CREATE TABLE pe_tokens (
    uid         TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    -- The name lowercased by the application: what the search matches.
    name_lower  TEXT    NOT NULL,
    description TEXT    NOT NULL,
    -- Space-separated scopes.
    scopes      TEXT    NOT NULL,
    -- NULL: every deployment; else comma-separated names ('' for none).
    deployments TEXT,
    created_s   INTEGER NOT NULL,
    created_ns  INTEGER NOT NULL,
    expires_s   INTEGER,
    expires_ns  INTEGER,
    last_used_s INTEGER,
    -- The 32 raw bytes of the secret's SHA-256.
    hash        BLOB    NOT NULL
);
-- Names are unique in a store: the index enforces it, no caller scans.
CREATE UNIQUE INDEX pe_tokens_name_key ON pe_tokens (name);
CREATE UNIQUE INDEX pe_tokens_hash_key ON pe_tokens (hash);
-- Listing pages in creation order.
CREATE INDEX pe_tokens_created ON pe_tokens (created_s, created_ns, uid);

-- Flags about the store itself: `first_admin_minted` once a first admin token was stored,
-- so a restart after every token was deleted mints no other.
CREATE TABLE pe_meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
