-- walcast_post_batch2 is walcast_post_batch (0004) with a leaner answer: a stored post comes
-- back as its id, seq and created_at only, since the rest of the row is what the API sent (the
-- API refuses text PostgreSQL would change: NUL, unpaired surrogates). The writer builds the
-- message from its input; a retry still returns the whole stored message. The API process no
-- longer parses back, per post, a dozen columns it already has.
--
-- walcast_post_batch stays for API processes of the previous version during a rolling upgrade;
-- a later migration drops it.
CREATE FUNCTION walcast_post_batch2(
  p_channel text[], p_user text[], p_text text[], p_client_msg_id text[], p_id uuid[], p_reply_to bigint[]
) RETURNS TABLE (
  ord int, outcome text, id uuid, seq bigint, created_at timestamptz, channel_id text, user_id text,
  text text, client_msg_id text, reply_to bigint, edited_at timestamptz, deleted_at timestamptz,
  reactions jsonb, changed_seq bigint
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM 1 FROM channels c WHERE c.id = ANY (p_channel) ORDER BY c.id FOR UPDATE;
  RETURN QUERY
  WITH input AS (
    SELECT (i.n - 1)::int AS ord, i.channel_id, i.user_id, i.text, i.client_msg_id, i.id, i.reply_to
      FROM unnest(p_channel, p_user, p_text, p_client_msg_id, p_id, p_reply_to)
           WITH ORDINALITY AS i(channel_id, user_id, text, client_msg_id, id, reply_to, n)
  ), judged AS (
    SELECT i.*,
           EXISTS (SELECT 1 FROM channels c WHERE c.id = i.channel_id) AS channel_exists,
           coalesce((SELECT c.is_private FROM channels c WHERE c.id = i.channel_id), false) AS is_private,
           EXISTS (SELECT 1 FROM channel_members m WHERE m.channel_id = i.channel_id AND m.user_id = i.user_id) AS member,
           (i.reply_to IS NULL OR EXISTS (SELECT 1 FROM messages p WHERE p.channel_id = i.channel_id AND p.seq = i.reply_to AND p.deleted_at IS NULL)) AS parent_ok,
           e.id AS existing_id
      FROM input i
      LEFT JOIN messages e ON e.channel_id = i.channel_id AND e.user_id = i.user_id AND e.client_msg_id = i.client_msg_id
  ), fresh AS (
    SELECT j.ord, j.channel_id, j.user_id, j.text, j.client_msg_id, j.id, j.reply_to,
           c.last_seq + row_number() OVER (PARTITION BY j.channel_id ORDER BY j.ord) AS seq
      FROM judged j JOIN channels c ON c.id = j.channel_id
     WHERE j.member AND j.existing_id IS NULL AND j.parent_ok
  ), inserted AS (
    INSERT INTO messages AS m (channel_id, seq, id, user_id, text, client_msg_id, reply_to, changed_seq)
    SELECT f.channel_id, f.seq, f.id, f.user_id, f.text, f.client_msg_id, f.reply_to, f.seq FROM fresh f
    RETURNING m.id, m.seq, m.created_at
  ), bumped AS (
    UPDATE channels c SET last_seq = f.last
      FROM (SELECT f.channel_id, max(f.seq) AS last FROM fresh f GROUP BY f.channel_id) f
     WHERE c.id = f.channel_id
  )
  SELECT NULL::int, 'stored'::text, ins.id, ins.seq, ins.created_at,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM inserted ins
  UNION ALL
  SELECT j.ord, 'retry', e.id, e.seq, e.created_at, e.channel_id, e.user_id, e.text, e.client_msg_id,
         e.reply_to, e.edited_at, e.deleted_at, e.reactions, e.changed_seq
    FROM judged j JOIN messages e ON e.id = j.existing_id
   WHERE j.member
  UNION ALL
  -- A private channel is invisible to non-members: as absent as an unknown one.
  SELECT j.ord, CASE WHEN NOT j.channel_exists OR (NOT j.member AND j.is_private) THEN 'no_channel'
                     WHEN NOT j.member THEN 'not_member' ELSE 'no_parent' END,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM judged j
   WHERE NOT j.member OR (j.existing_id IS NULL AND NOT j.parent_ok);
END
$$;

-- A generic plan, as for walcast_post_batch (0006).
ALTER FUNCTION walcast_post_batch2(text[], text[], text[], text[], uuid[], bigint[]) SET plan_cache_mode = force_generic_plan;
