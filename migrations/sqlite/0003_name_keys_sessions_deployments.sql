-- Names unique by how they look, browser sessions, and the deployments protected services
-- said they protect (layout: src/store/sql/mod.rs).

-- The name's key (record::name_key: NFKC, full case folding, the UTS #39 confusables
-- skeleton, no combining diacritics). SQL has no such function: the application fills it for
-- the rows there are, in the same transaction, then 0003_name_keys_unique.sql makes it unique.
-- Every insert writes it; it is never NULL once the migration is done.
ALTER TABLE pe_tokens ADD COLUMN name_key TEXT;

-- Browser sessions: keyed by the SHA-256 of the session id (the id itself is only in the
-- browser's cookie), with the token they were opened with, its secret sealed with a key only
-- the cookie holds, and when they end. No secret and no cookie value is ever stored.
CREATE TABLE pe_sessions (
    -- The 32 raw bytes of the SHA-256 of the session id.
    id_hash       BLOB    NOT NULL PRIMARY KEY,
    token_uid     TEXT    NOT NULL,
    -- The token's secret, sealed (authenticated encryption) with the cookie's key.
    sealed_secret BLOB    NOT NULL,
    expires_s     INTEGER NOT NULL,
    expires_ns    INTEGER NOT NULL
);
-- Deleting the sessions that ended.
CREATE INDEX pe_sessions_expires ON pe_sessions (expires_s, expires_ns);

-- The deployments protected services said they protect, and when they last said so.
CREATE TABLE pe_deployments_seen (
    name         TEXT    NOT NULL PRIMARY KEY,
    last_seen_s  INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL
);
