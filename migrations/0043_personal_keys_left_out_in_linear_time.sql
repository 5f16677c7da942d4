-- cpq-user-sync schema, version 43: a seal leaves personal keys out at a cost that grows with the
-- object, not with its square.
--
-- cpq.without_personal_keys (0040, the seals of lines 4) and cpq.without_personal_fields (0020,
-- the seals of lines 1 to 3 as verify recomputes them) took the personal keys out of an object
-- with jsonb's minus an array of them, which compares each key of the object with each key of
-- the array. CPQ decides how many keys a record holds: one holding n spellings of a personal field
-- (billStateProvince in n mixes of case, each kept in raw) cost n² at the seal of the run that
-- ends its version, and again at every `verify --chain` for as long as the history is kept
-- (review HJ: 80,000 spellings, 11 s for one record; a 16 MiB page holds 8 to 10 of them).
--
-- Past 32 personal keys, the object is now built again from its other keys (jsonb_object_agg over
-- jsonb_each: n log n). jsonb stores an object's keys sorted and once, so that is the same value,
-- and every seal made before verifies as it did. Up to 32 (any record CPQ sends as documented:
-- an address or two), minus stays: it costs less than building the object again.
-- Called for every row sealed: no SET clause, every function named by its schema (0020).

CREATE OR REPLACE FUNCTION cpq.without_personal_keys(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN pg_catalog.jsonb_typeof(j) = 'object'::pg_catalog.text THEN (
    SELECT CASE WHEN pg_catalog.cardinality(personal.keys) <= 32 THEN j - personal.keys
      ELSE coalesce((SELECT pg_catalog.jsonb_object_agg(e.key, e.value) FROM pg_catalog.jsonb_each(j) e WHERE NOT cpq.is_personal_key(e.key)),
                    '{}'::pg_catalog.jsonb) END
    FROM (SELECT ARRAY(SELECT k FROM pg_catalog.jsonb_object_keys(j) AS k WHERE cpq.is_personal_key(k)) AS keys) personal)
  ELSE j END
$$;

-- The old fold (lower() by the database's locale) stays, for the seals made with it (0040).
CREATE OR REPLACE FUNCTION cpq.without_personal_fields(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN pg_catalog.jsonb_typeof(j) = 'object'::pg_catalog.text THEN (
    SELECT CASE WHEN pg_catalog.cardinality(personal.keys) <= 32 THEN j - personal.keys
      ELSE coalesce((SELECT pg_catalog.jsonb_object_agg(e.key, e.value) FROM pg_catalog.jsonb_each(j) e
                     WHERE NOT (pg_catalog.lower(pg_catalog.replace(e.key, '_'::pg_catalog.text, ''::pg_catalog.text)) = ANY (cpq.personal_field_keys()))),
                    '{}'::pg_catalog.jsonb) END
    FROM (SELECT ARRAY(SELECT k FROM pg_catalog.jsonb_object_keys(j) AS k
                       WHERE pg_catalog.lower(pg_catalog.replace(k, '_'::pg_catalog.text, ''::pg_catalog.text)) = ANY (cpq.personal_field_keys())) AS keys) personal)
  ELSE j END
$$;
