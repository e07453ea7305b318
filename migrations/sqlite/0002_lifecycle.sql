-- The token lifecycle (layout: src/store/sql/mod.rs): disabling, lineage, per-token rate
-- limits, a reroll's grace period and verification counts. Every column has a default or
-- allows NULL, so the rows of a version 1 database upgrade in place, unchanged in meaning.

-- 1: the token works; 0: disabled (refused as unknown until enabled again).
ALTER TABLE pe_tokens ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
-- The uid of the token that created this one through an authority; NULL for none.
ALTER TABLE pe_tokens ADD COLUMN parent_uid TEXT;
-- Requests per window; both NULL for no limit.
ALTER TABLE pe_tokens ADD COLUMN rate_limit INTEGER;
ALTER TABLE pe_tokens ADD COLUMN rate_window_ms INTEGER;
-- The 32 raw bytes of the SHA-256 of the secret a reroll replaced, and when it stops
-- verifying; all NULL when there is none.
ALTER TABLE pe_tokens ADD COLUMN previous_hash BLOB;
ALTER TABLE pe_tokens ADD COLUMN previous_until_s INTEGER;
ALTER TABLE pe_tokens ADD COLUMN previous_until_ns INTEGER;
-- Verifications by outcome, added to in batches.
ALTER TABLE pe_tokens ADD COLUMN uses_valid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pe_tokens ADD COLUMN uses_expired INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pe_tokens ADD COLUMN uses_disabled INTEGER NOT NULL DEFAULT 0;
-- Finding a token's children, for a lineage delete.
CREATE INDEX pe_tokens_parent ON pe_tokens (parent_uid) WHERE parent_uid IS NOT NULL;
