-- promptvault schema for SQLite. Forward-only: never edit a committed migration.
-- Ids are UUID text, timestamps RFC 3339 UTC text with microseconds (fixed
-- width, so text order is time order), JSON is text.

CREATE TABLE "user" (
    id                 TEXT PRIMARY KEY NOT NULL,
    supabase_user_id   TEXT,
    did                TEXT,
    external_user_id   TEXT,
    email              TEXT,
    at_protocol_handle TEXT,
    data               TEXT,
    first_name         TEXT,
    last_name          TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT
);

CREATE TABLE user_role (
    user_id TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE api_key (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    secret_hash  BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT,
    last_used_at TEXT
);

CREATE TABLE prompt_type (
    id         TEXT PRIMARY KEY NOT NULL,
    key        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL UNIQUE,
    schema     TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    revision   INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE prompt_template (
    id                        TEXT PRIMARY KEY NOT NULL,
    prompt_type_id            TEXT NOT NULL REFERENCES prompt_type(id) ON DELETE RESTRICT,
    name                      TEXT NOT NULL UNIQUE,
    description               TEXT,
    long_description_markdown TEXT,
    creator_id                TEXT REFERENCES "user"(id) ON DELETE SET NULL,
    owner_id                  TEXT REFERENCES "user"(id) ON DELETE SET NULL,
    security_classification   TEXT NOT NULL
        CHECK (security_classification IN ('public', 'internal', 'confidential', 'restricted')),
    tags                      TEXT NOT NULL DEFAULT '[]',
    created_at                TEXT NOT NULL,
    updated_at                TEXT,
    revision                  INTEGER NOT NULL DEFAULT 1,
    latest_seq                INTEGER NOT NULL,
    last_seq                  INTEGER NOT NULL,
    latest_version            TEXT NOT NULL
);
CREATE INDEX prompt_template_type ON prompt_template (prompt_type_id, name);
CREATE INDEX prompt_template_owner ON prompt_template (owner_id, name);
CREATE INDEX prompt_template_class ON prompt_template (security_classification, name);

CREATE TABLE prompt_template_tag (
    template_id TEXT NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE,
    tag         TEXT NOT NULL,
    PRIMARY KEY (tag, template_id)
);
CREATE INDEX prompt_template_tag_template ON prompt_template_tag (template_id);

CREATE TABLE prompt_template_version (
    id                 TEXT PRIMARY KEY NOT NULL,
    template_id        TEXT NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE,
    seq                INTEGER NOT NULL,
    version            TEXT NOT NULL,
    status             TEXT NOT NULL
        CHECK (status IN ('draft', 'review', 'approved', 'deprecated', 'archived')),
    kind               TEXT NOT NULL CHECK (kind IN ('text', 'chat')),
    template_text      TEXT,
    messages           TEXT,
    parameter_schema   TEXT NOT NULL,
    config             TEXT NOT NULL,
    content_hash       TEXT NOT NULL,
    author_id          TEXT REFERENCES "user"(id) ON DELETE SET NULL,
    change_description TEXT,
    bump               TEXT CHECK (bump IN ('patch', 'minor', 'major')),
    restored_from      INTEGER,
    created_at         TEXT NOT NULL,
    updated_at         TEXT,
    revision           INTEGER NOT NULL DEFAULT 1,
    UNIQUE (template_id, seq),
    UNIQUE (template_id, version)
);
CREATE INDEX prompt_template_version_status ON prompt_template_version (status, template_id);

CREATE TABLE prompt_label (
    template_id TEXT NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    version_id  TEXT NOT NULL REFERENCES prompt_template_version(id),
    updated_at  TEXT NOT NULL,
    updated_by  TEXT REFERENCES "user"(id) ON DELETE SET NULL,
    revision    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (template_id, name)
);
CREATE INDEX prompt_label_version ON prompt_label (version_id);

CREATE TABLE prompt_label_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    template_id TEXT NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE,
    label       TEXT NOT NULL,
    from_seq    INTEGER,
    to_seq      INTEGER,
    at          TEXT NOT NULL,
    by_user     TEXT REFERENCES "user"(id) ON DELETE SET NULL
);
CREATE INDEX prompt_label_history_label ON prompt_label_history (template_id, label, id);

-- One rendering. Kept when its template is deleted (the ids become NULL).
CREATE TABLE prompt (
    id                 TEXT PRIMARY KEY NOT NULL,
    prompt_template_id TEXT REFERENCES prompt_template(id) ON DELETE SET NULL,
    prompt_type_id     TEXT REFERENCES prompt_type(id) ON DELETE SET NULL,
    version_id         TEXT REFERENCES prompt_template_version(id) ON DELETE SET NULL,
    version_seq        INTEGER,
    data               TEXT,
    prompt_text        TEXT,
    sender_id          TEXT REFERENCES "user"(id) ON DELETE SET NULL,
    created_at         TEXT NOT NULL,
    session_id         TEXT,
    request_id         TEXT,
    agent_id           TEXT,
    deployment_model   TEXT NOT NULL
        CHECK (deployment_model IN ('electron_local', 'electron_remote', 'web_application')),
    outcome            TEXT CHECK (outcome IN ('success', 'failure')),
    outcome_detail     TEXT,
    outcome_at         TEXT
);
CREATE INDEX prompt_template_time ON prompt (prompt_template_id, created_at);
CREATE INDEX prompt_version ON prompt (version_id);

-- Counters kept by the usage writer, so metrics never scan `prompt`.
CREATE TABLE usage_stats (
    template_id TEXT NOT NULL REFERENCES prompt_template(id) ON DELETE CASCADE,
    version_id  TEXT NOT NULL REFERENCES prompt_template_version(id) ON DELETE CASCADE,
    times_used  INTEGER NOT NULL DEFAULT 0,
    last_used   TEXT,
    successes   INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (template_id, version_id)
);

-- Full-text index; rowid = prompt_template.rowid. `body` is the newest
-- version's text.
CREATE VIRTUAL TABLE template_search USING fts5 (
    name, description, tags, body,
    tokenize = 'unicode61 remove_diacritics 2'
);
