-- Client credentials that authenticate with a key pair (RFC 7523 §2.2,
-- `private_key_jwt`): `public_jwk` holds the client's public JWK as JSON
-- text; NULL for a credential that authenticates with a secret. A key
-- credential still has a `secret_hash`: the hash of random bytes nobody
-- ever sees, and it never authenticates by secret.

ALTER TABLE client_credentials ADD COLUMN public_jwk TEXT;
