-- Org-defined member attributes: a typed roster schema per org and each member's values.

-- An attribute definition. `kind` is the value type; `options` (a JSON array of strings) lists
-- the choices of a `choice` attribute. Names are unique in the org ignoring case.
CREATE TABLE attributes (
    id          BLOB PRIMARY KEY NOT NULL,
    org_id      BLOB NOT NULL REFERENCES orgs(id),
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('string', 'integer', 'decimal', 'boolean', 'date', 'choice')),
    options     TEXT,
    required    BOOLEAN NOT NULL DEFAULT FALSE,
    is_unique   BOOLEAN NOT NULL DEFAULT FALSE,
    description TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX attributes_org_name ON attributes (org_id, name_key);

-- One member's value of one attribute, in its canonical text form (integers and decimals
-- normalised, booleans `true`/`false`, dates `YYYY-MM-DD`), so equality is typed equality.
-- `unique_key` repeats the value while the attribute is unique (NULL otherwise): the unique
-- index below is what enforces uniqueness.
CREATE TABLE member_attributes (
    org_id        BLOB NOT NULL REFERENCES orgs(id),
    attribute_id  BLOB NOT NULL REFERENCES attributes(id),
    member_id     BLOB NOT NULL REFERENCES members(id),
    value_text    TEXT NOT NULL,
    unique_key    TEXT,
    PRIMARY KEY (org_id, member_id, attribute_id)
);
-- The list filter `attr.NAME=VALUE` walks this index.
CREATE INDEX member_attributes_value ON member_attributes (org_id, attribute_id, value_text, member_id);
CREATE UNIQUE INDEX member_attributes_unique ON member_attributes (org_id, attribute_id, unique_key);
