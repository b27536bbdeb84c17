// The baseline of `npm run bench -- gateway`: a bare Fastify POST handler that does no I/O. It
// reads the body as the gateway does (a buffer), parses it (a JSON object, or NDJSON lines) and
// answers 200 with the count. Prints its URL on stdout.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
app.post('/events', { bodyLimit: 1024 * 1024 }, async (req) => {
  const text = req.body.toString('utf8');
  let n = 0;
  if (/ndjson/.test(String(req.headers['content-type']))) {
    for (const line of text.split('\n')) if (line.trim()) JSON.parse(line), n++;
  } else {
    JSON.parse(text);
    n = 1;
  }
  return { accepted: n, duplicates: 0 };
});
await app.listen({ host: '127.0.0.1', port: 0 });
const a = app.server.address();
process.stdout.write(`http://127.0.0.1:${a.port}/events\n`);
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
