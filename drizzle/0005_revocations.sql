-- Token revocation (src/auth/revocations.ts): tokens of user_id issued before not_before
-- (seconds since the epoch; `iat` < not_before, or no `iat`) are refused by the API and the
-- gateways. revoked_at lets every process poll for revocations it missed on the bus.
CREATE TABLE IF NOT EXISTS "revocations" (
	"user_id" text PRIMARY KEY NOT NULL,
	"not_before" bigint NOT NULL,
	"revoked_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "revocations_revoked_at_idx" ON "revocations" USING btree ("revoked_at");
