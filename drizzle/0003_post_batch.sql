-- Group commit (src/chat/writer.ts): one call stores a batch of posts, in one transaction and
-- one round trip. Inputs are parallel arrays, one element per post, in arrival order. Each
-- post gets exactly one row back: `stored` (the new message, found by the id the caller chose),
-- `retry` (the message an earlier post with the same client_msg_id stored), `not_member` or
-- `no_channel` (those three carry the post's 0-based position as `ord`). Only stored posts take
-- a seq, consecutive per channel in arrival order.
--
-- Two statements, on purpose: the first locks the batch's channel rows in id order (batches
-- never deadlock); the second starts after the locks are held, and a VOLATILE function gives
-- each statement a fresh snapshot in READ COMMITTED, so it sees every commit up to the locks:
-- last_seq, memberships and earlier retries are current.
CREATE OR REPLACE FUNCTION walcast_post_batch(
  p_channel text[], p_user text[], p_text text[], p_client_msg_id text[], p_id uuid[]
) RETURNS TABLE (
  ord int, outcome text, id uuid, channel_id text, seq bigint, user_id text, text text,
  client_msg_id text, created_at timestamptz
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM 1 FROM channels c WHERE c.id = ANY (p_channel) ORDER BY c.id FOR UPDATE;
  RETURN QUERY
  WITH input AS (
    SELECT (i.n - 1)::int AS ord, i.channel_id, i.user_id, i.text, i.client_msg_id, i.id
      FROM unnest(p_channel, p_user, p_text, p_client_msg_id, p_id)
           WITH ORDINALITY AS i(channel_id, user_id, text, client_msg_id, id, n)
  ), judged AS (
    SELECT i.*,
           EXISTS (SELECT 1 FROM channels c WHERE c.id = i.channel_id) AS channel_exists,
           EXISTS (SELECT 1 FROM channel_members m WHERE m.channel_id = i.channel_id AND m.user_id = i.user_id) AS member,
           e.id AS existing_id
      FROM input i
      LEFT JOIN messages e ON e.channel_id = i.channel_id AND e.user_id = i.user_id AND e.client_msg_id = i.client_msg_id
  ), fresh AS (
    SELECT j.ord, j.channel_id, j.user_id, j.text, j.client_msg_id, j.id,
           c.last_seq + row_number() OVER (PARTITION BY j.channel_id ORDER BY j.ord) AS seq
      FROM judged j JOIN channels c ON c.id = j.channel_id
     WHERE j.member AND j.existing_id IS NULL
  ), inserted AS (
    INSERT INTO messages AS m (channel_id, seq, id, user_id, text, client_msg_id)
    SELECT f.channel_id, f.seq, f.id, f.user_id, f.text, f.client_msg_id FROM fresh f
    RETURNING m.id, m.channel_id, m.seq, m.user_id, m.text, m.client_msg_id, m.created_at
  ), bumped AS (
    UPDATE channels c SET last_seq = f.last
      FROM (SELECT f.channel_id, max(f.seq) AS last FROM fresh f GROUP BY f.channel_id) f
     WHERE c.id = f.channel_id
  )
  SELECT NULL::int, 'stored'::text, ins.id, ins.channel_id, ins.seq, ins.user_id, ins.text, ins.client_msg_id, ins.created_at
    FROM inserted ins
  UNION ALL
  SELECT j.ord, 'retry', e.id, e.channel_id, e.seq, e.user_id, e.text, e.client_msg_id, e.created_at
    FROM judged j JOIN messages e ON e.id = j.existing_id
   WHERE j.member
  UNION ALL
  SELECT j.ord, CASE WHEN j.channel_exists THEN 'not_member' ELSE 'no_channel' END,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM judged j
   WHERE NOT j.member;
END
$$;
