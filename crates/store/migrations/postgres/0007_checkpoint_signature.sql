-- Retention checkpoints carry the instance's Ed25519 signature, so a forged
-- checkpoint cannot hide deleted audit events.
ALTER TABLE audit_checkpoint ADD COLUMN key_id text;
ALTER TABLE audit_checkpoint ADD COLUMN signature text;
