-- promptvault schema for PostgreSQL. Forward-only: never edit a committed migration.
-- The same tables and columns as the SQLite schema, with native types: uuid
-- ids, timestamptz (microseconds), jsonb, bytea. The tables live in the schema
-- named by the connection's search_path, so nothing here names a schema.
-- Names and keys that are ordered or range-compared use COLLATE "C", so their
-- order is byte order, exactly as on SQLite (page cursors depend on it).

CREATE TABLE "user" (
    id                 uuid PRIMARY KEY,
    supabase_user_id   uuid,
    did                text,
    external_user_id   text,
    email              text,
    at_protocol_handle text,
    data               jsonb,
    first_name         text,
    last_name          text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz
);

CREATE TABLE user_role (
    user_id uuid NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    role    text COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE api_key (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL UNIQUE,
    secret_hash  bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE TABLE prompt_type (
    id         uuid PRIMARY KEY,
    key        text COLLATE "C" NOT NULL UNIQUE,
    name       text NOT NULL UNIQUE,
    schema     jsonb,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    revision   bigint NOT NULL DEFAULT 1
);

CREATE TABLE prompt_template (
    id                        uuid PRIMARY KEY,
    -- RESTRICT: a type in use is never deleted (the store reports InUse first).
    prompt_type_id            uuid NOT NULL REFERENCES prompt_type(id) ON DELETE RESTRICT,
    name                      text COLLATE "C" NOT NULL UNIQUE,
    description               text,
    long_description_markdown text,
    creator_id                uuid REFERENCES "user"(id) ON DELETE SET NULL,
    owner_id                  uuid REFERENCES "user"(id) ON DELETE SET NULL,
    security_classification   text NOT NULL
        CHECK (security_classification IN ('public', 'internal', 'confidential', 'restricted')),
    tags                      jsonb NOT NULL DEFAULT '[]',
    created_at                timestamptz NOT NULL,
    updated_at                timestamptz,
    revision                  bigint NOT NULL DEFAULT 1,
    latest_seq                bigint NOT NULL,
    last_seq                  bigint NOT NULL,
    latest_version            text NOT NULL,
    -- Full-text entry, written by the store in the same transaction as the
    -- rows it is computed from ('simple' configuration; weights A name,
    -- B description and tags, D newest version's text).
    search                    tsvector NOT NULL DEFAULT ''::tsvector
);
CREATE INDEX prompt_template_type ON prompt_template (prompt_type_id, name);
CREATE INDEX prompt_template_owner ON prompt_template (owner_id, name);
CREATE INDEX prompt_template_class ON prompt_template (security_classification, name);
CREATE INDEX prompt_template_search ON prompt_template USING gin (search);

CREATE TABLE prompt_template_tag (
    template_id uuid NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE,
    tag         text NOT NULL,
    PRIMARY KEY (tag, template_id)
);
CREATE INDEX prompt_template_tag_template ON prompt_template_tag (template_id);

CREATE TABLE prompt_template_version (
    id                 uuid PRIMARY KEY,
    template_id        uuid NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE,
    seq                bigint NOT NULL,
    version            text NOT NULL,
    status             text NOT NULL
        CHECK (status IN ('draft', 'review', 'approved', 'deprecated', 'archived')),
    kind               text NOT NULL CHECK (kind IN ('text', 'chat')),
    template_text      text,
    -- `json`, not `jsonb`: the content hash covers these values, and jsonb
    -- would rewrite numbers (1e16 comes back as 10000000000000000).
    messages           json,
    parameter_schema   json NOT NULL,
    config             json NOT NULL,
    content_hash       text NOT NULL,
    author_id          uuid REFERENCES "user"(id) ON DELETE SET NULL,
    change_description text,
    bump               text CHECK (bump IN ('patch', 'minor', 'major')),
    restored_from      bigint,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz,
    revision           bigint NOT NULL DEFAULT 1,
    UNIQUE (template_id, seq),
    UNIQUE (template_id, version)
);
CREATE INDEX prompt_template_version_status ON prompt_template_version (status, template_id);

CREATE TABLE prompt_label (
    template_id uuid NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE,
    name        text COLLATE "C" NOT NULL,
    -- NO ACTION: a labelled version is not deleted (the store reports Labelled).
    version_id  uuid NOT NULL REFERENCES prompt_template_version(id),
    updated_at  timestamptz NOT NULL,
    updated_by  uuid REFERENCES "user"(id) ON DELETE SET NULL,
    revision    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (template_id, name)
);
CREATE INDEX prompt_label_version ON prompt_label (version_id);

CREATE TABLE prompt_label_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template_id uuid NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE,
    label       text NOT NULL,
    from_seq    bigint,
    to_seq      bigint,
    at          timestamptz NOT NULL,
    by_user     uuid REFERENCES "user"(id) ON DELETE SET NULL
);
CREATE INDEX prompt_label_history_label ON prompt_label_history (template_id, label, id);

-- One rendering. Kept when its template is deleted (the ids become NULL).
CREATE TABLE prompt (
    id                 uuid PRIMARY KEY,
    prompt_template_id uuid REFERENCES prompt_template(id) ON DELETE SET NULL,
    prompt_type_id     uuid REFERENCES prompt_type(id) ON DELETE SET NULL,
    version_id         uuid REFERENCES prompt_template_version(id) ON DELETE SET NULL,
    version_seq        bigint,
    data               jsonb,
    prompt_text        text,
    sender_id          uuid REFERENCES "user"(id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL,
    session_id         text,
    request_id         text,
    agent_id           text,
    deployment_model   text NOT NULL
        CHECK (deployment_model IN ('electron_local', 'electron_remote', 'web_application')),
    outcome            text CHECK (outcome IN ('success', 'failure')),
    outcome_detail     text,
    outcome_at         timestamptz
);
CREATE INDEX prompt_template_time ON prompt (prompt_template_id, created_at);
CREATE INDEX prompt_version ON prompt (version_id);

-- Counters kept by the usage writer, so metrics never scan `prompt`.
CREATE TABLE usage_stats (
    template_id uuid NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE,
    version_id  uuid NOT NULL REFERENCES prompt_template_version(id) ON DELETE CASCADE,
    times_used  bigint NOT NULL DEFAULT 0,
    last_used   timestamptz,
    successes   bigint NOT NULL DEFAULT 0,
    failures    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (template_id, version_id)
);
