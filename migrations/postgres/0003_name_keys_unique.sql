-- After the application filled `name_key` for every row (0003_name_keys_sessions_deployments.sql):
-- names are unique by their key (two replicas creating look-alike names at once: exactly one
-- commits). Two rows whose names looked alike before this version both keep working: the
-- later one's key carries its uid (a key no new name can have), and a new name that looks
-- like either is refused by the application.
ALTER TABLE pe_tokens ALTER COLUMN name_key SET NOT NULL;
ALTER TABLE pe_tokens ADD CONSTRAINT pe_tokens_folded_name_key UNIQUE (name_key);
