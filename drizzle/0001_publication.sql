-- The publication the CDC relay streams: only what it needs. New messages (inserts) become
-- message events; removed memberships (deletes, i.e. kicks) end live subscriptions through the
-- same ordered stream. The replication slot is NOT created here: PostgreSQL refuses to create
-- a logical slot in a transaction that has written, and drizzle runs migrations in one
-- transaction. The relay (and `walcast slot create`) creates it.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'walcast') THEN
    CREATE PUBLICATION walcast FOR TABLE messages, channel_members WITH (publish = 'insert, delete');
  END IF;
END
$$;
