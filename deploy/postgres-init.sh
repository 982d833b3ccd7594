#!/bin/sh
# Runs once, when the postgres container initialises its data dir (docker-entrypoint-initdb.d):
# the database walcast and its owner walcast_app, the role walcast connects as. LOGIN
# REPLICATION (the relay streams the slot) and nothing else: not a superuser, no CREATEDB, no
# CREATEROLE. SCRAM-SHA-256 password from WALCAST_DB_PASSWORD.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v pw="$WALCAST_DB_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE walcast_app LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
CREATE DATABASE walcast OWNER walcast_app;
SQL
