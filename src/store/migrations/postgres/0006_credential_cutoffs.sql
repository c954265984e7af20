-- A client credential's cut-off for tokens: tokens minted from it at or
-- before `tokens_not_before` (unix ms; set when its secret is regenerated)
-- are dead, so regenerating a leaked secret also ends the tokens it bought.

ALTER TABLE client_credentials ADD COLUMN tokens_not_before BIGINT;
