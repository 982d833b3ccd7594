-- walcast 0.1 shipped the `notify` comparison source's trigger function in this migration. The
-- comparison sources now live in the benchmarks (bench/sources), which create what they need
-- themselves, so the product's schema no longer carries it. Databases that ran the old
-- migration keep a harmless function until this one drops it; new ones never had it.
DROP TRIGGER IF EXISTS walcast_notify_message ON messages;
DROP FUNCTION IF EXISTS walcast_notify_message();
