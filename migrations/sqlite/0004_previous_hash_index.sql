-- Finding a token by a secret a reroll replaced (the authority's read model fetches a token
-- by the hash of the secret presented, current or replaced): few rows have one.
CREATE INDEX pe_tokens_previous_hash ON pe_tokens (previous_hash) WHERE previous_hash IS NOT NULL;
