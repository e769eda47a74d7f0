BEGIN;
UPDATE "users" SET "status" = $1 WHERE ("users"."id" = $2) RETURNING "users"."id";
INSERT INTO "tags" ("id", "user_id", "status") VALUES ($1, $2, $3) ON CONFLICT ("id") DO UPDATE SET "status" = excluded."status";
COMMIT