-- Quotas (layout: src/store/sql/mod.rs): requests per UTC day or month, and the uses of the
-- current period the authority counted. Every column allows NULL or has a default, so the rows
-- of a version 4 database upgrade in place, unchanged in meaning (no quota).

-- Requests per period, and the period ('day' or 'month'); both NULL for no quota.
ALTER TABLE pe_tokens ADD COLUMN quota_limit INTEGER;
ALTER TABLE pe_tokens ADD COLUMN quota_period TEXT;
-- Uses counted in the period that began at quota_period_s (Unix seconds); a count of an
-- earlier period counts nothing.
ALTER TABLE pe_tokens ADD COLUMN quota_used INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pe_tokens ADD COLUMN quota_period_s INTEGER;
