-- Names unique by how they look, browser sessions, and the deployments protected services
-- said they protect (layout: src/store/sql/mod.rs).

-- The name's key (record::name_key: NFKC, full case folding, the UTS #39 confusables
-- skeleton, no combining diacritics). SQL has no such function: the application fills it for
-- the rows there are, in the same transaction, then 0003_name_keys_unique.sql makes it unique
-- and NOT NULL. Compared byte by byte (COLLATE "C"): keys are compared exactly, and the range
-- that finds a legacy key's rows (`name_key || chr(31)` and up) follows byte order.
ALTER TABLE pe_tokens ADD COLUMN name_key TEXT COLLATE "C";

-- Browser sessions: keyed by the SHA-256 of the session id (the id itself is only in the
-- browser's cookie), with the token they were opened with, its secret sealed with a key only
-- the cookie holds, and when they end. No secret and no cookie value is ever stored.
CREATE TABLE pe_sessions (
    -- The 32 raw bytes of the SHA-256 of the session id.
    id_hash       BYTEA   NOT NULL,
    token_uid     TEXT    NOT NULL,
    -- The token's secret, sealed (authenticated encryption) with the cookie's key.
    sealed_secret BYTEA   NOT NULL,
    expires_s     BIGINT  NOT NULL,
    expires_ns    BIGINT  NOT NULL,
    CONSTRAINT pe_sessions_pkey PRIMARY KEY (id_hash)
);
-- Deleting the sessions that ended.
CREATE INDEX pe_sessions_expires ON pe_sessions (expires_s, expires_ns);

-- The deployments protected services said they protect, and when they last said so.
CREATE TABLE pe_deployments_seen (
    name         TEXT    NOT NULL PRIMARY KEY,
    last_seen_s  BIGINT  NOT NULL,
    last_seen_ns BIGINT  NOT NULL
);
