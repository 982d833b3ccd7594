-- walcast_post_batch is one statement with a dozen subqueries over array parameters. PL/pgSQL
-- plans it with the call's values for its first calls on a connection and, because a plan made
-- for array parameters never looks cheaper, keeps re-planning it on every call: measured here,
-- about half of the PostgreSQL CPU of a one-post call went to planning. The plan does not
-- depend on the values (lookups by primary key and unique index), so a generic plan is kept.
ALTER FUNCTION walcast_post_batch(text[], text[], text[], text[], uuid[], bigint[]) SET plan_cache_mode = force_generic_plan;
