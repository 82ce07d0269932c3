import type { MigrationInterface, QueryRunner } from 'typeorm';

export class TokenExpiryAndOrderRate1795513000000 implements MigrationInterface {
  name = 'TokenExpiryAndOrderRate1795513000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "api_tokens" ADD COLUMN "expires_at" datetime');
    await queryRunner.query('ALTER TABLE "api_tokens" ADD COLUMN "engine_issued" boolean NOT NULL DEFAULT (0)');
    await queryRunner.query('ALTER TABLE "api_tokens" ADD COLUMN "order_window" integer');
    await queryRunner.query('ALTER TABLE "api_tokens" ADD COLUMN "order_count" integer NOT NULL DEFAULT (0)');
    // Tokens the engine issued before this column existed: their creation was audited with the engine as actor.
    // Matched here rather than in SQL: target_id is text, and casts differ by driver and collation.
    const audited: { target_id: string }[] = await queryRunner.query(
      `SELECT "target_id" FROM "audit_events" WHERE "action" = 'token.create' AND "actor" = 'engine' AND "target_type" = 'api_token'`,
    );
    const ids = audited.map((row) => row.target_id).filter((id) => /^[0-9]{1,10}$/.test(id)).map(Number);
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      await queryRunner.query(`UPDATE "api_tokens" SET "engine_issued" = 1 WHERE "id" IN (${chunk.map(() => '?').join(', ')})`, chunk);
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "api_tokens" DROP COLUMN "order_count"');
    await queryRunner.query('ALTER TABLE "api_tokens" DROP COLUMN "order_window"');
    await queryRunner.query('ALTER TABLE "api_tokens" DROP COLUMN "engine_issued"');
    await queryRunner.query('ALTER TABLE "api_tokens" DROP COLUMN "expires_at"');
  }
}
