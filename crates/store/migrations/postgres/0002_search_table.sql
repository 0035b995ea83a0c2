-- Full-text search in its own table.
--
-- 0001 kept the tsvector on prompt_template, so every new version updated
-- the template row twice (its newest version, then its vector), and ranking
-- a match read the whole vector, body included. Here `document` (name,
-- description, tags and newest text) is what matches, and the much smaller
-- `meta` (name, description, tags) is what ranks.

CREATE TABLE template_search (
    template_id uuid PRIMARY KEY REFERENCES prompt_template(id) ON DELETE CASCADE,
    meta        tsvector NOT NULL,
    document    tsvector NOT NULL
);

INSERT INTO template_search (template_id, meta, document)
SELECT t.id,
       setweight(to_tsvector('simple', translate(t.name, '/-_.', '    ') || ' ' || t.name), 'A')
         || setweight(to_tsvector('simple', coalesce(t.description, '')), 'B')
         || setweight(to_tsvector('simple',
              coalesce((SELECT string_agg(value, ' ') FROM jsonb_array_elements_text(t.tags)), '')), 'B'),
       t.search
FROM prompt_template t;

CREATE INDEX template_search_document ON template_search USING gin (document);

DROP INDEX prompt_template_search;
ALTER TABLE prompt_template DROP COLUMN search;
