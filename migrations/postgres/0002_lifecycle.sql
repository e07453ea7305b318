-- The token lifecycle (layout: src/store/sql/mod.rs): disabling, lineage, per-token rate
-- limits, a reroll's grace period and verification counts. Every column has a default or
-- allows NULL, so the rows of a version 1 database upgrade in place, unchanged in meaning.

ALTER TABLE pe_tokens
    -- false: disabled (refused as unknown until enabled again).
    ADD COLUMN enabled           BOOLEAN NOT NULL DEFAULT TRUE,
    -- The uid of the token that created this one through an authority; NULL for none.
    ADD COLUMN parent_uid        TEXT,
    -- Requests per window; both NULL for no limit.
    ADD COLUMN rate_limit        BIGINT,
    ADD COLUMN rate_window_ms    BIGINT,
    -- The 32 raw bytes of the SHA-256 of the secret a reroll replaced, and when it stops
    -- verifying; all NULL when there is none.
    ADD COLUMN previous_hash     BYTEA,
    ADD COLUMN previous_until_s  BIGINT,
    ADD COLUMN previous_until_ns BIGINT,
    -- Verifications by outcome, added to in batches.
    ADD COLUMN uses_valid        BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN uses_expired      BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN uses_disabled     BIGINT NOT NULL DEFAULT 0;
-- Finding a token's children, for a lineage delete.
CREATE INDEX pe_tokens_parent ON pe_tokens (parent_uid) WHERE parent_uid IS NOT NULL;
