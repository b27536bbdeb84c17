/** Writes schema/dip.schema.json from the zod schema (`npm run schema`). */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { projectConfigSchema } from '../src/config/schema.js';

export const SCHEMA_FILE = fileURLToPath(new URL('../schema/dip.schema.json', import.meta.url));
export const SCHEMA_ID = 'urn:dip:schema:project:v1';

export function buildJsonSchema(): Record<string, unknown> {
  // io 'input': what a user writes, so keys with defaults are optional.
  const generated = z.toJSONSchema(projectConfigSchema, { io: 'input' }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return { $schema, $id: SCHEMA_ID, title: 'DIP project (dip.yaml)', ...rest };
}

export function renderJsonSchema(): string {
  return `${JSON.stringify(buildJsonSchema(), null, 2)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SCHEMA_FILE, renderJsonSchema());
  console.log(`wrote ${SCHEMA_FILE}`);
}
