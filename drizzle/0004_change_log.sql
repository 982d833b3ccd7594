-- The channel change log. Every change in a channel takes the channel's next seq, in the
-- transaction that stores it, exactly as a new message does: new messages are rows of
-- `messages`; every other change (an edit, a delete, a reaction, a member joining or leaving)
-- is a row of `channel_events`, and the message it touches is updated in the same transaction.
-- The relay turns both into frames, in seq order; `conversations.replay` reads both back.

-- Messages in their current state. `changed_seq` is the seq of the last change applied to the
-- row (its own seq until one is): a client that receives the row (history, catch-up) applies
-- later changes only, so replaying the log over current state never counts anything twice.
ALTER TABLE messages
  ADD COLUMN reply_to bigint,
  ADD COLUMN edited_at timestamptz,
  ADD COLUMN deleted_at timestamptz,
  ADD COLUMN reactions jsonb NOT NULL DEFAULT '{}'::jsonb,
  ADD COLUMN changed_seq bigint;
UPDATE messages SET changed_seq = seq WHERE changed_seq IS NULL;
ALTER TABLE messages ALTER COLUMN changed_seq SET NOT NULL;
-- The relay needs the whole row after an UPDATE. pgoutput leaves an unchanged, out-of-line
-- (TOASTed) value out of the new tuple; with REPLICA IDENTITY FULL the old tuple carries it.
ALTER TABLE messages REPLICA IDENTITY FULL;

CREATE TABLE channel_events (
  channel_id text NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
  seq bigint NOT NULL,
  kind text NOT NULL CHECK (kind IN ('message_changed', 'message_deleted', 'reaction_added', 'reaction_removed', 'member_joined', 'member_left')),
  target_seq bigint,
  user_id text NOT NULL,
  name text,
  -- member_left: why (`left`, `kicked`).
  reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (channel_id, seq)
);

CREATE TABLE message_reactions (
  channel_id text NOT NULL,
  seq bigint NOT NULL,
  user_id text NOT NULL,
  name text NOT NULL,
  PRIMARY KEY (channel_id, seq, name, user_id),
  FOREIGN KEY (channel_id, seq) REFERENCES messages (channel_id, seq) ON DELETE CASCADE
);

-- Who may do what in a channel: its creator is its owner; owners and admins may kick and
-- invite; members may invite where the channel allows it.
ALTER TABLE channel_members
  ADD COLUMN role text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
  -- The seq of the member_joined that added the user (0 for the creator): a subscription never
  -- delivers what happened in the channel before its user (last) joined it.
  ADD COLUMN joined_seq bigint NOT NULL DEFAULT 0;
UPDATE channel_members m SET role = 'owner' FROM channels c WHERE c.id = m.channel_id AND c.created_by = m.user_id;
ALTER TABLE channels ADD COLUMN members_can_invite boolean NOT NULL DEFAULT true;

-- A kicked user cannot rejoin a public channel until someone invites them again.
CREATE TABLE channel_bans (
  channel_id text NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
  user_id text NOT NULL,
  banned_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (channel_id, user_id)
);

-- Users walcast has seen (authenticated at least once): invites name only users that exist.
CREATE TABLE users (
  id text PRIMARY KEY,
  first_seen timestamptz NOT NULL DEFAULT now()
);
INSERT INTO users (id) SELECT DISTINCT user_id FROM channel_members ON CONFLICT DO NOTHING;

-- The relay streams new messages and their updates, and the change log. Membership rows no
-- longer travel: member_joined/member_left events carry the change in seq order.
ALTER PUBLICATION walcast SET TABLE messages, channel_events;
ALTER PUBLICATION walcast SET (publish = 'insert, update');

-- Group commit, now with replies: a reply names a message (not a change) of the same channel
-- that exists and is not deleted, else the post is refused (`no_parent`) without taking a seq.
DROP FUNCTION walcast_post_batch(text[], text[], text[], text[], uuid[]);
CREATE FUNCTION walcast_post_batch(
  p_channel text[], p_user text[], p_text text[], p_client_msg_id text[], p_id uuid[], p_reply_to bigint[]
) RETURNS TABLE (
  ord int, outcome text, id uuid, channel_id text, seq bigint, user_id text, text text,
  client_msg_id text, created_at timestamptz, reply_to bigint, edited_at timestamptz,
  deleted_at timestamptz, reactions jsonb, changed_seq bigint
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
    RETURNING m.id, m.channel_id, m.seq, m.user_id, m.text, m.client_msg_id, m.created_at, m.reply_to,
              m.edited_at, m.deleted_at, m.reactions, m.changed_seq
  ), bumped AS (
    UPDATE channels c SET last_seq = f.last
      FROM (SELECT f.channel_id, max(f.seq) AS last FROM fresh f GROUP BY f.channel_id) f
     WHERE c.id = f.channel_id
  )
  SELECT NULL::int, 'stored'::text, ins.* FROM inserted ins
  UNION ALL
  SELECT j.ord, 'retry', e.id, e.channel_id, e.seq, e.user_id, e.text, e.client_msg_id, e.created_at,
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

-- A change to a message: an edit or a delete (its author only) or a reaction (any member).
-- One call, one transaction: lock the channel row (the seq), then the message row; a refused
-- or idempotent change ('noop': the reaction was already there, the message already deleted)
-- takes no seq. Returns one row: the outcome, the change's seq, and the message after it.
CREATE FUNCTION walcast_change_message(
  p_channel text, p_user text, p_kind text, p_target bigint, p_text text, p_name text
) RETURNS TABLE (
  -- the message's columns in table order, so that `m.*` fills them
  outcome text, change_seq bigint, is_private boolean, channel_id text, seq bigint, id uuid,
  user_id text, text text, client_msg_id text, created_at timestamptz, reply_to bigint,
  edited_at timestamptz, deleted_at timestamptz, reactions jsonb, changed_seq bigint
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  ch channels%ROWTYPE;
  m messages%ROWTYPE;
  next bigint;
  cnt int;
BEGIN
  SELECT * INTO ch FROM channels c WHERE c.id = p_channel FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'no_channel'::text, NULL::bigint, NULL::boolean, (NULL::messages).*;
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM channel_members cm WHERE cm.channel_id = p_channel AND cm.user_id = p_user) THEN
    RETURN QUERY SELECT 'not_member'::text, NULL::bigint, ch.is_private, (NULL::messages).*;
    RETURN;
  END IF;
  SELECT * INTO m FROM messages x WHERE x.channel_id = p_channel AND x.seq = p_target FOR UPDATE;
  IF NOT FOUND OR (m.deleted_at IS NOT NULL AND p_kind <> 'message_deleted') THEN
    RETURN QUERY SELECT 'no_message'::text, NULL::bigint, ch.is_private, (NULL::messages).*;
    RETURN;
  END IF;
  IF p_kind IN ('message_changed', 'message_deleted') AND m.user_id <> p_user THEN
    RETURN QUERY SELECT 'not_author'::text, NULL::bigint, ch.is_private, (NULL::messages).*;
    RETURN;
  END IF;
  IF p_kind = 'message_deleted' AND m.deleted_at IS NOT NULL THEN
    RETURN QUERY SELECT 'noop'::text, NULL::bigint, ch.is_private, m.*;
    RETURN;
  END IF;
  IF p_kind = 'reaction_added' THEN
    INSERT INTO message_reactions (channel_id, seq, user_id, name) VALUES (p_channel, p_target, p_user, p_name)
      ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS cnt = ROW_COUNT;
  ELSIF p_kind = 'reaction_removed' THEN
    DELETE FROM message_reactions r
     WHERE r.channel_id = p_channel AND r.seq = p_target AND r.user_id = p_user AND r.name = p_name;
    GET DIAGNOSTICS cnt = ROW_COUNT;
  ELSE
    cnt := 1;
  END IF;
  IF cnt = 0 THEN
    RETURN QUERY SELECT 'noop'::text, NULL::bigint, ch.is_private, m.*;
    RETURN;
  END IF;

  next := ch.last_seq + 1;
  UPDATE channels c SET last_seq = next WHERE c.id = p_channel;
  IF p_kind = 'message_changed' THEN
    UPDATE messages x SET text = p_text, edited_at = now(), changed_seq = next
     WHERE x.channel_id = p_channel AND x.seq = p_target RETURNING * INTO m;
  ELSIF p_kind = 'message_deleted' THEN
    -- The text is gone from the row (and from every replay); the tombstone keeps its place.
    DELETE FROM message_reactions r WHERE r.channel_id = p_channel AND r.seq = p_target;
    UPDATE messages x SET text = '', deleted_at = now(), reactions = '{}'::jsonb, changed_seq = next
     WHERE x.channel_id = p_channel AND x.seq = p_target RETURNING * INTO m;
  ELSIF p_kind = 'reaction_added' THEN
    UPDATE messages x SET reactions = jsonb_set(x.reactions, ARRAY[p_name], to_jsonb(coalesce((x.reactions ->> p_name)::int, 0) + 1)),
                          changed_seq = next
     WHERE x.channel_id = p_channel AND x.seq = p_target RETURNING * INTO m;
  ELSE
    UPDATE messages x SET reactions = CASE WHEN coalesce((x.reactions ->> p_name)::int, 0) <= 1 THEN x.reactions - p_name
                                           ELSE jsonb_set(x.reactions, ARRAY[p_name], to_jsonb((x.reactions ->> p_name)::int - 1)) END,
                          changed_seq = next
     WHERE x.channel_id = p_channel AND x.seq = p_target RETURNING * INTO m;
  END IF;
  INSERT INTO channel_events (channel_id, seq, kind, target_seq, user_id, name)
  VALUES (p_channel, next, p_kind, p_target, p_user,
          CASE WHEN p_kind IN ('reaction_added', 'reaction_removed') THEN p_name END);
  RETURN QUERY SELECT 'ok'::text, next, ch.is_private, m.*;
END
$$;

-- A change of membership: join (a public channel, unless banned), invite (by a member where
-- the channel allows members to invite, else by its owner or an admin; only users walcast
-- knows unless p_any_user), kick (by its owner or an admin; never the owner), leave. Each user
-- who joins or leaves takes the channel's next seq (member_joined / member_left); an invite of
-- a member or a join by one changes nothing. Returns one row: the outcome, the users it is
-- about (unknown users for `unknown_users`), and the channel after it.
CREATE FUNCTION walcast_change_members(
  p_channel text, p_actor text, p_kind text, p_users text[], p_any_user boolean
) RETURNS TABLE (
  outcome text, users text[], id text, name text, is_private boolean, last_seq bigint
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  ch channels%ROWTYPE;
  actor_role text;
  u text;
  unknown text[];
  next bigint;
BEGIN
  SELECT * INTO ch FROM channels c WHERE c.id = p_channel FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'no_channel'::text, NULL::text[], NULL::text, NULL::text, NULL::boolean, NULL::bigint;
    RETURN;
  END IF;
  SELECT cm.role INTO actor_role FROM channel_members cm WHERE cm.channel_id = p_channel AND cm.user_id = p_actor;
  next := ch.last_seq;

  IF p_kind = 'join' THEN
    IF actor_role IS NULL THEN
      IF ch.is_private THEN
        RETURN QUERY SELECT 'no_channel'::text, NULL::text[], NULL::text, NULL::text, NULL::boolean, NULL::bigint;
        RETURN;
      END IF;
      IF EXISTS (SELECT 1 FROM channel_bans b WHERE b.channel_id = p_channel AND b.user_id = p_actor) THEN
        RETURN QUERY SELECT 'banned'::text, ARRAY[p_actor], ch.id, ch.name, ch.is_private, ch.last_seq;
        RETURN;
      END IF;
      next := next + 1;
      INSERT INTO channel_members (channel_id, user_id, role, joined_seq) VALUES (p_channel, p_actor, 'member', next);
      INSERT INTO channel_events (channel_id, seq, kind, user_id) VALUES (p_channel, next, 'member_joined', p_actor);
    END IF;
  ELSE
    IF actor_role IS NULL THEN
      RETURN QUERY SELECT CASE WHEN ch.is_private THEN 'no_channel' ELSE 'not_member' END, NULL::text[],
                          NULL::text, NULL::text, NULL::boolean, NULL::bigint;
      RETURN;
    END IF;
    IF p_kind = 'invite' THEN
      IF NOT ch.members_can_invite AND actor_role = 'member' THEN
        RETURN QUERY SELECT 'not_allowed'::text, NULL::text[], ch.id, ch.name, ch.is_private, ch.last_seq;
        RETURN;
      END IF;
      IF NOT p_any_user THEN
        SELECT array_agg(x ORDER BY x) INTO unknown FROM unnest(p_users) x WHERE NOT EXISTS (SELECT 1 FROM users us WHERE us.id = x);
        IF unknown IS NOT NULL THEN
          RETURN QUERY SELECT 'unknown_users'::text, unknown, ch.id, ch.name, ch.is_private, ch.last_seq;
          RETURN;
        END IF;
      END IF;
      FOR u IN SELECT DISTINCT x FROM unnest(p_users) x ORDER BY 1 LOOP
        DELETE FROM channel_bans b WHERE b.channel_id = p_channel AND b.user_id = u;
        CONTINUE WHEN EXISTS (SELECT 1 FROM channel_members cm WHERE cm.channel_id = p_channel AND cm.user_id = u);
        next := next + 1;
        INSERT INTO channel_members (channel_id, user_id, role, joined_seq) VALUES (p_channel, u, 'member', next);
        INSERT INTO channel_events (channel_id, seq, kind, user_id) VALUES (p_channel, next, 'member_joined', u);
      END LOOP;
    ELSIF p_kind = 'kick' THEN
      u := p_users[1];
      IF actor_role = 'member' OR EXISTS (SELECT 1 FROM channel_members cm WHERE cm.channel_id = p_channel AND cm.user_id = u AND cm.role = 'owner') THEN
        RETURN QUERY SELECT 'not_allowed'::text, NULL::text[], ch.id, ch.name, ch.is_private, ch.last_seq;
        RETURN;
      END IF;
      INSERT INTO channel_bans (channel_id, user_id) VALUES (p_channel, u) ON CONFLICT DO NOTHING;
      DELETE FROM channel_members cm WHERE cm.channel_id = p_channel AND cm.user_id = u;
      IF FOUND THEN
        next := next + 1;
        INSERT INTO channel_events (channel_id, seq, kind, user_id, reason) VALUES (p_channel, next, 'member_left', u, 'kicked');
      END IF;
    ELSIF p_kind = 'leave' THEN
      DELETE FROM channel_members cm WHERE cm.channel_id = p_channel AND cm.user_id = p_actor;
      next := next + 1;
      INSERT INTO channel_events (channel_id, seq, kind, user_id, reason) VALUES (p_channel, next, 'member_left', p_actor, 'left');
    END IF;
  END IF;

  IF next <> ch.last_seq THEN
    UPDATE channels c SET last_seq = next WHERE c.id = p_channel;
  END IF;
  RETURN QUERY SELECT 'ok'::text, NULL::text[], ch.id, ch.name, ch.is_private, next;
END
$$;
