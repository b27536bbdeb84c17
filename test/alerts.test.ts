/** Alert delivery against a real local webhook receiver (node:http) and a real SMTP server (smtp-server). */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { alertsSchema, type AlertsConfig } from '../src/config/orchestrate.js';
import { Alerter, emailMessage, MemoryAlertLedger, slackPayload, type AlertLog } from '../src/orchestrate/alerts.js';
import type { Alert } from '../src/catalog/orchestration-types.js';

// ---- a webhook receiver: /ok answers 200, /fail 500, /bad 400, /hang never ----

interface Hook {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

const hooks: Hook[] = [];
let http: Server;
let hookBase = '';

function answer(path: string, res: ServerResponse): void {
  if (path === '/hang') return;
  const [status, text] = path === '/fail' ? [500, 'boom'] : path === '/bad' ? [400, 'invalid_payload'] : [200, 'ok'];
  res.writeHead(status, { 'content-type': 'text/plain' }).end(text);
}

// ---- an SMTP receiver: no STARTTLS, auth optional (checked when given) ----

interface Mail {
  from: string;
  to: string[];
  user: string | undefined;
  raw: string;
}

const mails: Mail[] = [];
let smtp: SMTPServer;
let smtpPort = 0;

before(async () => {
  http = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      hooks.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      answer(path, res);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  hookBase = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  smtp = new SMTPServer({
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === 'alerts' && auth.password === 's3cret') cb(null, { user: auth.username });
      else cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          user: typeof session.user === 'string' ? session.user : undefined,
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  smtpPort = (smtp.server.address() as AddressInfo).port;
});

after(async () => {
  http.closeAllConnections();
  await new Promise<void>((resolve) => http.close(() => resolve()));
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
});

beforeEach(() => {
  hooks.length = 0;
  mails.length = 0;
});

const open: Alerter[] = [];
afterEach(async () => {
  for (const a of open.splice(0)) await a.close();
});

// ---- fixtures ----

const AT = new Date('2024-05-01T02:00:00.000Z');

function alert(over: Partial<Alert> = {}): Alert {
  return {
    kind: 'failure',
    key: 'failure:shop:ingest.orders',
    pipeline: 'shop',
    title: 'shop: ingest.orders failed',
    text: 'Task ingest.orders failed on attempt 3 of 3.',
    fields: { run: 'r-42', task: 'ingest.orders', error: 'connect ECONNREFUSED <db:5432>' },
    at: AT,
    ...over,
  };
}

function config(input: Record<string, unknown> = {}): AlertsConfig {
  return alertsSchema.parse({
    webhooks: [{ url: `${hookBase}/ok`, headers: { 'X-Team': 'data' } }],
    email: {
      host: '127.0.0.1',
      port: smtpPort,
      from: 'dip@example.com',
      to: ['oncall@example.com', 'data@example.com'],
    },
    ...input,
  });
}

function alerter(
  cfg: AlertsConfig | undefined,
  ledger = new MemoryAlertLedger(),
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; log?: AlertLog } = {},
): Alerter {
  const a = Alerter.create(cfg, ledger, { retryDelayMs: 10, ...opts });
  open.push(a);
  return a;
}

// ---- a small MIME reader: headers, and the text/plain part decoded ----

function splitHeaders(part: string): { headers: Map<string, string>; body: string } {
  const cut = part.indexOf('\r\n\r\n');
  const head = part.slice(0, cut).replace(/\r\n[ \t]+/g, ' ');
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { headers, body: part.slice(cut + 4) };
}

function decode(body: string, encoding: string | undefined): string {
  if (encoding === 'base64') return Buffer.from(body, 'base64').toString('utf8');
  if (encoding === 'quoted-printable') {
    const soft = body.replace(/=\r\n/g, '');
    const bytes: number[] = [];
    for (let i = 0; i < soft.length; i++) {
      if (soft[i] === '=' && /^[0-9A-F]{2}$/i.test(soft.slice(i + 1, i + 3))) {
        bytes.push(parseInt(soft.slice(i + 1, i + 3), 16));
        i += 2;
      } else bytes.push(soft.charCodeAt(i));
    }
    return Buffer.from(bytes).toString('utf8');
  }
  return body;
}

function readMail(raw: string): { headers: Map<string, string>; text: string } {
  const { headers, body } = splitHeaders(raw);
  const boundary = /boundary="?([^";]+)"?/.exec(headers.get('content-type') ?? '')?.[1];
  assert.ok(boundary, 'multipart message');
  const parts = body
    .split(`--${boundary}`)
    .slice(1, -1)
    .map((p) => splitHeaders(p.replace(/^\r\n/, '').replace(/\r\n$/, '')));
  const plain = parts.find((p) => (p.headers.get('content-type') ?? '').startsWith('text/plain'));
  assert.ok(plain, 'a text/plain part');
  return { headers, text: decode(plain.body, plain.headers.get('content-transfer-encoding')).replace(/\r\n/g, '\n') };
}

// ---- tests ----

const EXPECTED_SLACK = {
  text: 'shop: ingest.orders failed\nTask ingest.orders failed on attempt 3 of 3.',
  blocks: [
    { type: 'header', text: { type: 'plain_text', text: 'shop: ingest.orders failed' } },
    { type: 'section', text: { type: 'mrkdwn', text: 'Task ingest.orders failed on attempt 3 of 3.' } },
    {
      type: 'section',
      fields: [
        { type: 'mrkdwn', text: '*run*\nr-42' },
        { type: 'mrkdwn', text: '*task*\ningest.orders' },
        { type: 'mrkdwn', text: '*error*\nconnect ECONNREFUSED &lt;db:5432&gt;' },
      ],
    },
    { type: 'context', elements: [{ type: 'mrkdwn', text: 'Failure · pipeline shop · 2024-05-01T02:00:00.000Z' }] },
  ],
};

const EXPECTED_TEXT =
  'Task ingest.orders failed on attempt 3 of 3.\n\nrun: r-42\ntask: ingest.orders\nerror: connect ECONNREFUSED <db:5432>\n\nFailure · pipeline shop · 2024-05-01T02:00:00.000Z\n';

describe('alert messages', () => {
  it('slackPayload: header, text section, mrkdwn fields (escaped), context line', () => {
    assert.deepEqual(slackPayload(alert()), EXPECTED_SLACK);
  });

  it('slackPayload: more than 10 fields split into sections of 10; no text section when the text is empty', () => {
    const fields = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${i}`, `v${i}`]));
    const p = slackPayload(alert({ text: '', fields, pipeline: null, kind: 'sla', title: 'late' }));
    assert.equal(p.text, 'late');
    assert.deepEqual(
      p.blocks.map((b) => ('fields' in b ? b.fields.length : b.type)),
      ['header', 10, 2, 'context'],
    );
    assert.deepEqual(p.blocks.at(-1), {
      type: 'context',
      elements: [{ type: 'mrkdwn', text: 'SLA breach · 2024-05-01T02:00:00.000Z' }],
    });
  });

  it('emailMessage: subject, from, to, text body with the fields, escaped html', () => {
    const m = emailMessage(alert({ title: 'shop:\n ingest.orders failed' }), {
      from: 'dip@example.com',
      to: ['a@example.com'],
    });
    assert.equal(m.subject, '[dip] shop: ingest.orders failed');
    assert.equal(m.from, 'dip@example.com');
    assert.deepEqual(m.to, ['a@example.com']);
    assert.equal(m.text, EXPECTED_TEXT);
    assert.match(
      m.html,
      /<th align="left" valign="top">error<\/th><td style="white-space:pre-wrap">connect ECONNREFUSED &lt;db:5432&gt;<\/td>/,
    );
  });

  it('emailMessage: multi-line field values are indented', () => {
    const m = emailMessage(alert({ text: '', fields: { error: 'line 1\nline 2' } }), { from: 'f@x', to: ['t@x'] });
    assert.equal(m.text, 'error: line 1\n  line 2\n\nFailure · pipeline shop · 2024-05-01T02:00:00.000Z\n');
  });
});

describe('Alerter', () => {
  it('delivers to the webhook (Slack JSON, custom header) and by email (envelope, headers, body)', async () => {
    const a = alerter(config());
    const r = await a.send(alert());
    assert.deepEqual(r, {
      sent: true,
      deliveries: [
        { channel: 'webhook:1', ok: true },
        { channel: 'email', ok: true },
      ],
    });

    assert.equal(hooks.length, 1);
    const hook = hooks[0]!;
    assert.equal(hook.path, '/ok');
    assert.equal(hook.headers['content-type'], 'application/json');
    assert.equal(hook.headers['x-team'], 'data');
    assert.deepEqual(JSON.parse(hook.body), EXPECTED_SLACK);

    assert.equal(mails.length, 1);
    const mail = mails[0]!;
    assert.equal(mail.from, 'dip@example.com');
    assert.deepEqual(mail.to, ['oncall@example.com', 'data@example.com']);
    assert.equal(mail.user, undefined);
    const { headers, text } = readMail(mail.raw);
    assert.equal(headers.get('subject'), '[dip] shop: ingest.orders failed');
    assert.equal(headers.get('from'), 'dip@example.com');
    assert.equal(headers.get('to'), 'oncall@example.com, data@example.com');
    assert.equal(text, EXPECTED_TEXT);
  });

  it('dedup: one incident alerts once per window; again after the window, after a recovery; other keys alert', async () => {
    const a = alerter(config({ dedup: '1h' }));
    assert.equal((await a.send(alert())).sent, true);
    const dup = await a.send(alert({ at: new Date(AT.getTime() + 59 * 60_000) }));
    assert.deepEqual(dup, { sent: false, deliveries: [] });
    assert.equal(hooks.length, 1);
    assert.equal(mails.length, 1);

    assert.equal((await a.send(alert({ key: 'failure:shop:silver.orders' }))).sent, true);
    assert.equal(hooks.length, 2);
    assert.equal(mails.length, 2);

    assert.equal((await a.send(alert({ at: new Date(AT.getTime() + 60 * 60_000) }))).sent, true, 'window passed');
    assert.equal(hooks.length, 3);

    // A recovery (not enabled here) is not sent, but ends the incident: the next failure alerts.
    const rec = await a.send(alert({ kind: 'recovery', title: 'recovered', at: new Date(AT.getTime() + 61 * 60_000) }));
    assert.deepEqual(rec, { sent: false, deliveries: [] });
    assert.equal(hooks.length, 3);
    assert.equal((await a.send(alert({ at: new Date(AT.getTime() + 62 * 60_000) }))).sent, true, 'after recovery');
    assert.equal(hooks.length, 4);
    assert.equal(mails.length, 4);
  });

  it('sends a recovery only when enabled; kinds not in `on` are not sent and not recorded', async () => {
    const ledger = new MemoryAlertLedger();
    const a = alerter(config({ on: ['failure', 'recovery'] }), ledger);
    assert.deepEqual(await a.send(alert({ kind: 'sla', key: 'sla:shop:bronze.orders' })), {
      sent: false,
      deliveries: [],
    });
    assert.equal(hooks.length + mails.length, 0);
    assert.equal(await ledger.claim('sla:shop:bronze.orders', AT, 3_600_000), true, 'the skipped alert left no record');

    await a.send(alert());
    const rec = await a.send(alert({ kind: 'recovery', title: 'shop: ingest.orders recovered', text: '', fields: {} }));
    assert.equal(rec.sent, true);
    assert.equal(hooks.length, 2);
    assert.equal(JSON.parse(hooks[1]!.body).text, 'shop: ingest.orders recovered');
    assert.equal(readMail(mails[1]!.raw).headers.get('subject'), '[dip] shop: ingest.orders recovered');
    assert.equal((await a.send(alert())).sent, true, 'the incident was resolved');
  });

  it('a webhook answering 500 twice is reported (retried once) while the email is delivered', async () => {
    const logs: [string, Record<string, unknown> | undefined][] = [];
    const a = alerter(config({ webhooks: [{ url: `${hookBase}/fail` }, { url: `${hookBase}/ok` }] }), undefined, {
      log: (msg, fields) => logs.push([msg, fields]),
    });
    const r = await a.send(alert());
    assert.deepEqual(r, {
      sent: true,
      deliveries: [
        { channel: 'webhook:1', ok: false, error: 'HTTP 500: boom (after 2 attempts)' },
        { channel: 'webhook:2', ok: true },
        { channel: 'email', ok: true },
      ],
    });
    assert.deepEqual(hooks.map((h) => h.path).sort(), ['/fail', '/fail', '/ok']);
    assert.equal(mails.length, 1);
    assert.ok(
      logs.some(
        ([msg, f]) =>
          msg === 'alert delivery failed' &&
          f?.['channel'] === 'webhook:1' &&
          f['error'] === 'HTTP 500: boom (after 2 attempts)',
      ),
    );
  });

  it('a 4xx is not retried; when every channel fails the incident is not recorded, so the next report tries again', async () => {
    const a = alerter(config({ webhooks: [{ url: `${hookBase}/bad` }], email: undefined }));
    const r = await a.send(alert());
    assert.deepEqual(r, {
      sent: false,
      deliveries: [{ channel: 'webhook:1', ok: false, error: 'HTTP 400: invalid_payload' }],
    });
    assert.equal(hooks.length, 1);
    assert.equal((await a.send(alert())).deliveries.length, 1, 'tried again');
    assert.equal(hooks.length, 2);
  });

  it('an unreachable SMTP server and a hanging webhook are delivery errors, not exceptions', async () => {
    const a = alerter(
      config({
        webhooks: [{ url: `${hookBase}/hang` }],
        email: { host: '127.0.0.1', port: 1, from: 'f@example.com', to: ['t@example.com'] },
      }),
      undefined,
      { timeoutMs: 150 },
    );
    const r = await a.send(alert());
    assert.equal(r.sent, false);
    assert.deepEqual(r.deliveries[0], {
      channel: 'webhook:1',
      ok: false,
      error: 'timed out after 150 ms (after 2 attempts)',
    });
    assert.equal(hooks.length, 2);
    assert.equal(r.deliveries[1]?.channel, 'email');
    assert.equal(r.deliveries[1]?.ok, false);
    assert.match(r.deliveries[1]?.error ?? '', /ECONNREFUSED/);
  });

  it('resolves ${env:…} in the webhook URL, header values and the SMTP password; a missing variable is a delivery error', async () => {
    const env = { DIP_TEST_HOOK: `${hookBase}/ok`, DIP_TEST_TOKEN: 'tok-1', DIP_TEST_SMTP: 's3cret' };
    // Built by hand: the schema's url() check rejects a URL that is one `${env:…}` reference.
    const cfg: AlertsConfig = {
      ...config(),
      webhooks: [{ url: '${env:DIP_TEST_HOOK}', headers: { Authorization: 'Bearer ${env:DIP_TEST_TOKEN}' } }],
      email: {
        host: '127.0.0.1',
        port: smtpPort,
        secure: false,
        user: 'alerts',
        password: '${env:DIP_TEST_SMTP}',
        from: 'dip@example.com',
        to: ['oncall@example.com'],
      },
    };
    const a = alerter(cfg, undefined, { env });
    assert.deepEqual(await a.send(alert()), {
      sent: true,
      deliveries: [
        { channel: 'webhook:1', ok: true },
        { channel: 'email', ok: true },
      ],
    });
    assert.equal(hooks[0]?.path, '/ok');
    assert.equal(hooks[0]?.headers['authorization'], 'Bearer tok-1');
    assert.equal(mails[0]?.user, 'alerts');

    const missing = alerter({ ...cfg, email: undefined }, undefined, { env: {} });
    assert.deepEqual(await missing.send(alert()), {
      sent: false,
      deliveries: [
        {
          channel: 'webhook:1',
          ok: false,
          error:
            'Secret reference ${env:DIP_TEST_HOOK} cannot be resolved: environment variable DIP_TEST_HOOK is not set',
        },
      ],
    });
  });

  it('without alert config or channels nothing is sent', async () => {
    assert.deepEqual(await alerter(undefined).send(alert()), { sent: false, deliveries: [] });
    assert.deepEqual(await alerter(alertsSchema.parse({})).send(alert()), { sent: false, deliveries: [] });
    assert.equal(hooks.length + mails.length, 0);
  });
});

describe('MemoryAlertLedger', () => {
  it('claims a key once per window, measured from the last claim that succeeded', async () => {
    const l = new MemoryAlertLedger();
    const t = (min: number) => new Date(AT.getTime() + min * 60_000);
    assert.equal(await l.claim('k', t(0), 10 * 60_000), true);
    assert.equal(await l.claim('k', t(9), 10 * 60_000), false);
    assert.equal(await l.claim('other', t(9), 10 * 60_000), true);
    assert.equal(await l.claim('k', t(10), 10 * 60_000), true);
    await l.resolve('k');
    assert.equal(await l.claim('k', t(11), 10 * 60_000), true);
  });
});
