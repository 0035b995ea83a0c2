-- Governance: identities, roles, sessions, lifecycle and approvals,
-- workflows, compliance checks, and the hash-chained audit trail.

ALTER TABLE "user" ADD COLUMN password_hash TEXT;
ALTER TABLE "user" ADD COLUMN disabled_at TEXT;
CREATE UNIQUE INDEX user_email ON "user" (lower(email)) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX user_external_id ON "user" (external_user_id) WHERE external_user_id IS NOT NULL;

-- Where requests made with this key come from (electron_local, ...).
ALTER TABLE api_key ADD COLUMN deployment TEXT;
CREATE INDEX api_key_user ON api_key (user_id);

-- Custom roles; the built-in ones live in code.
CREATE TABLE role (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    permissions TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT,
    revision    INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE web_session (
    token_hash   BLOB PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX web_session_user ON web_session (user_id);

ALTER TABLE prompt_type ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE prompt_template ADD COLUMN access TEXT NOT NULL DEFAULT '{}';

-- Lifecycle: when the status last changed, the deprecation notice, the
-- review round (each submission starts one), and the compliance results.
ALTER TABLE prompt_template_version ADD COLUMN status_changed_at TEXT;
ALTER TABLE prompt_template_version ADD COLUMN deprecation TEXT;
ALTER TABLE prompt_template_version ADD COLUMN review_round INTEGER NOT NULL DEFAULT 0;
ALTER TABLE prompt_template_version ADD COLUMN check_results TEXT;

CREATE TABLE version_decision (
    id          TEXT PRIMARY KEY NOT NULL,
    version_id  TEXT NOT NULL REFERENCES prompt_template_version(id) ON DELETE CASCADE,
    round       INTEGER NOT NULL,
    step        TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('approve', 'reject', 'submit')),
    comment     TEXT,
    decided_at  TEXT NOT NULL
);
CREATE INDEX version_decision_version ON version_decision (version_id, round);

CREATE TABLE approval_workflow (
    name       TEXT PRIMARY KEY NOT NULL,
    definition TEXT NOT NULL,
    source     TEXT NOT NULL CHECK (source IN ('api', 'file')),
    updated_at TEXT NOT NULL
);

CREATE TABLE compliance_check (
    key        TEXT PRIMARY KEY NOT NULL,
    definition TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Append-only. No foreign keys: events outlive what they describe.
CREATE TABLE audit_event (
    seq           INTEGER PRIMARY KEY NOT NULL,
    id            TEXT NOT NULL UNIQUE,
    at            TEXT NOT NULL,
    actor_id      TEXT,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_kind TEXT NOT NULL,
    resource      TEXT,
    outcome       TEXT NOT NULL,
    reason        TEXT,
    request_id    TEXT,
    client_addr   TEXT,
    details       TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX audit_event_at ON audit_event (at);
CREATE INDEX audit_event_actor ON audit_event (actor_id, at);

-- The chain's head: one row, locked by every append, so events are numbered
-- densely and each links to the one before.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- What retention purged: verification starts from the newest checkpoint.
CREATE TABLE audit_checkpoint (
    through_seq INTEGER PRIMARY KEY NOT NULL,
    last_hash   TEXT NOT NULL,
    purged      INTEGER NOT NULL,
    at          TEXT NOT NULL
);
