-- When a web session last proved its password (sign-in or re-authentication):
-- acting on restricted templates needs a recent one. Existing sessions
-- count from their sign-in.
ALTER TABLE web_session ADD COLUMN authenticated_at TEXT;
UPDATE web_session SET authenticated_at = created_at;
