-- For the `notify` comparison source only (WALCAST_SOURCE=notify, benchmarks): the trigger
-- function that sends each new message row, as the JSON of a Message, with pg_notify on the
-- channel `walcast_messages`. Only the function lives here; the TRIGGER that calls it is
-- created by the relay role when it starts with source=notify (src/sources/notify.ts) and
-- dropped by a relay starting with any other source: NOTIFY takes a global lock at COMMIT
-- that serialises every committing transaction that notified, so it must never fire in cdc
-- mode.
--
-- NOTIFY payloads must be shorter than 8000 bytes; pg_notify raises an error beyond, and an
-- error in an AFTER INSERT trigger rolls the INSERT back (the POST would fail). So a row whose
-- JSON is 8000 bytes or more is announced by its key only ({"channel","seq","truncated":true})
-- and the listener reads the row from the table.
CREATE OR REPLACE FUNCTION walcast_notify_message() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  payload text;
BEGIN
  payload := json_build_object(
    'id', NEW.id,
    'channel', NEW.channel_id,
    'seq', NEW.seq,
    'user', NEW.user_id,
    'text', NEW.text,
    'client_msg_id', NEW.client_msg_id,
    'created_at', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  )::text;
  IF octet_length(payload) >= 8000 THEN
    payload := json_build_object('channel', NEW.channel_id, 'seq', NEW.seq, 'truncated', true)::text;
  END IF;
  PERFORM pg_notify('walcast_messages', payload);
  RETURN NULL;
END
$$;
