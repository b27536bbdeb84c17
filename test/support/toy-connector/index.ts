/** The toy connector's implementation: one NDJSON unit per stream, with the count it emitted as state. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineConnector, type StreamSpec } from '../../../src/sources/types.js';
import { toySpec } from './spec.js';

export default defineConnector({
  spec: toySpec,
  capabilities: { incremental: true, fileLedger: false, formats: ['ndjson'] },
  create(config) {
    const streams: StreamSpec[] = Object.entries(config.streams).map(([name, s]) => ({
      name,
      table: s.table ?? name,
      writeDisposition: 'append',
      primaryKey: [],
      schemaContract: 'evolve',
    }));
    return {
      streams: () => streams,
      async plan(stream, ctx) {
        const rows = config.streams[stream.name]?.rows ?? 0;
        const emitted = (ctx.state as { emitted?: number } | undefined)?.emitted ?? 0;
        if (emitted >= rows) return { units: [], skipped: 0 };
        const path = join(ctx.stagingDir, `toy-${stream.name}.ndjson`);
        const lines = Array.from({ length: rows - emitted }, (_, i) =>
          JSON.stringify({ id: emitted + i + 1, name: `${stream.name} ${emitted + i + 1}` }),
        );
        const text = `${lines.join('\n')}\n`;
        await writeFile(path, text);
        return {
          units: [
            {
              label: `toy ${stream.name}`,
              input: { path, format: 'ndjson' },
              bytes: Buffer.byteLength(text),
              position: { toy: stream.name },
              state: { emitted: rows },
            },
          ],
          skipped: 0,
        };
      },
      async close() {},
    };
  },
});
