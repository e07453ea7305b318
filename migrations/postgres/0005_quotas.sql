-- Quotas (layout: src/store/sql/mod.rs): requests per UTC day or month, and the uses of the
-- current period the authority counted. Every column allows NULL or has a default, so the rows
-- of a version 4 database upgrade in place, unchanged in meaning (no quota).

ALTER TABLE pe_tokens
    -- Requests per period, and the period ('day' or 'month'); both NULL for no quota.
    ADD COLUMN quota_limit    BIGINT,
    ADD COLUMN quota_period   TEXT,
    -- Uses counted in the period that began at quota_period_s (Unix seconds); a count of an
    -- earlier period counts nothing.
    ADD COLUMN quota_used     BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN quota_period_s BIGINT;
