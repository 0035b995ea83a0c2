-- Governance: identities, roles, sessions, lifecycle and approvals,
-- workflows, compliance checks, and the hash-chained audit trail.

ALTER TABLE "user" ADD COLUMN password_hash text;
ALTER TABLE "user" ADD COLUMN disabled_at timestamptz;
CREATE UNIQUE INDEX user_email ON "user" (lower(email)) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX user_external_id ON "user" (external_user_id) WHERE external_user_id IS NOT NULL;

ALTER TABLE api_key ADD COLUMN deployment text;
CREATE INDEX api_key_user ON api_key (user_id);

CREATE TABLE role (
    name        text COLLATE "C" PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    permissions jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz,
    revision    bigint NOT NULL DEFAULT 1
);

CREATE TABLE web_session (
    token_hash   bytea PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX web_session_user ON web_session (user_id);

ALTER TABLE prompt_type ADD COLUMN policy jsonb NOT NULL DEFAULT '{}';
ALTER TABLE prompt_template ADD COLUMN access jsonb NOT NULL DEFAULT '{}';

ALTER TABLE prompt_template_version ADD COLUMN status_changed_at timestamptz;
ALTER TABLE prompt_template_version ADD COLUMN deprecation jsonb;
ALTER TABLE prompt_template_version ADD COLUMN review_round integer NOT NULL DEFAULT 0;
ALTER TABLE prompt_template_version ADD COLUMN check_results jsonb;

CREATE TABLE version_decision (
    id          uuid PRIMARY KEY,
    version_id  uuid NOT NULL REFERENCES prompt_template_version(id) ON DELETE CASCADE,
    round       integer NOT NULL,
    step        text NOT NULL,
    user_id     uuid NOT NULL,
    decision    text NOT NULL CHECK (decision IN ('approve', 'reject', 'submit')),
    comment     text,
    decided_at  timestamptz NOT NULL
);
CREATE INDEX version_decision_version ON version_decision (version_id, round);

CREATE TABLE approval_workflow (
    name       text COLLATE "C" PRIMARY KEY,
    definition jsonb NOT NULL,
    source     text NOT NULL CHECK (source IN ('api', 'file')),
    updated_at timestamptz NOT NULL
);

CREATE TABLE compliance_check (
    key        text COLLATE "C" PRIMARY KEY,
    definition jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Append-only. No foreign keys: events outlive what they describe. Text
-- columns keep exactly what was hashed (details as its JSON text).
CREATE TABLE audit_event (
    seq           bigint PRIMARY KEY,
    id            uuid NOT NULL UNIQUE,
    at            timestamptz NOT NULL,
    actor_id      text,
    actor         text NOT NULL,
    action        text NOT NULL,
    resource_kind text NOT NULL,
    resource      text,
    outcome       text NOT NULL,
    reason        text,
    request_id    text,
    client_addr   text,
    details       text NOT NULL,
    prev_hash     text NOT NULL,
    hash          text NOT NULL
);
CREATE INDEX audit_event_at ON audit_event (at);
CREATE INDEX audit_event_actor ON audit_event (actor_id, at);

CREATE TABLE audit_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_checkpoint (
    through_seq bigint PRIMARY KEY,
    last_hash   text NOT NULL,
    purged      bigint NOT NULL,
    at          timestamptz NOT NULL
);
