-- A partial index for the search a start makes for an open admin account.
-- On a store whose accounts were imported in bulk, with no admin yet, that
-- search read every account's scopes before the first admin was created
-- (at a million accounts, ~0.2 s of that start); with the index it reads
-- only the admin accounts, of which there are few.
--
-- The query says what the index says, term for term, with the same literal
-- pattern (a partial index cannot serve a bound parameter): `OPEN_ADMINS`
-- in src/store/sql, and a test there fails when they part.

CREATE INDEX service_accounts_open_admins ON service_accounts (id)
WHERE closed_at IS NULL AND scopes LIKE '%"keygate:admin"%';
