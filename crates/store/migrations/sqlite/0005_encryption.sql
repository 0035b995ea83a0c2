-- Encryption at rest: data keys wrapped by the master key, the master key's
-- fingerprint, sealed content columns, and the instance's signing key.

CREATE TABLE encryption_key (
    id         TEXT PRIMARY KEY NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT
);

-- One row: which master key wraps the data keys, and which data key seals.
CREATE TABLE encryption_state (
    id                 INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    master_fingerprint TEXT NOT NULL,
    active_key         TEXT NOT NULL REFERENCES encryption_key(id),
    -- 'classified' or 'all': what was sealed when the store last opened.
    scope              TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

-- Sealed content: when `sealed` is set, the plain columns hold placeholders
-- (NULL text and messages, '{}' schema and config) and `sealed_key` names
-- the data key.
ALTER TABLE prompt_template_version ADD COLUMN sealed BLOB;
ALTER TABLE prompt_template_version ADD COLUMN sealed_key TEXT;
CREATE INDEX prompt_template_version_sealed_key ON prompt_template_version (sealed_key) WHERE sealed_key IS NOT NULL;

ALTER TABLE prompt ADD COLUMN sealed BLOB;
ALTER TABLE prompt ADD COLUMN sealed_key TEXT;
CREATE INDEX prompt_sealed_key ON prompt (sealed_key) WHERE sealed_key IS NOT NULL;

-- The instance's Ed25519 signing key; the private half is wrapped by the
-- master key like a data key.
CREATE TABLE instance_key (
    id          TEXT PRIMARY KEY NOT NULL,
    public_key  BLOB NOT NULL,
    wrapped     BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

-- Templates whose stored content must be sealed (after a reclassification,
-- a wider scope, or keys created over existing data); the re-encryption job
-- works through them and deletes each when done.
CREATE TABLE seal_pending (
    template_id TEXT PRIMARY KEY NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE
);
