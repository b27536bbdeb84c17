/**
 * Alert delivery: failures, exhausted retries, SLA breaches and quality failures go to
 * Slack-compatible webhooks and by email. One incident (one alert key) alerts once per dedup
 * window, remembered by an `AlertLedger`; a recovery forgets the incident so the next failure
 * alerts again. A channel that fails never stops the others and never throws out of `send()`.
 */
import type { SMTPSentMessageInfo, SMTPTransportOptions, Transporter } from 'nodemailer';
import type { AlertsConfig } from '../config/orchestrate.js';
import { redact, resolveSecrets, secretRegistry, type ResolveSecretsOptions } from '../config/secrets.js';
import { errorMessage } from '../core/errors.js';
import { durationMs } from '../core/time.js';
import type { Alert, AlertKind, AlertLedger } from '../catalog/orchestration-types.js';

export type EmailConfig = NonNullable<AlertsConfig['email']>;
export type AlertLog = (msg: string, fields?: Record<string, unknown>) => void;

export interface AlerterOptions {
  /** Relative `${file:…}` secret paths resolve against this directory (default: the working directory). */
  baseDir?: string;
  log?: AlertLog;
  /** Where `${env:…}` references are looked up (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Per webhook attempt (default 10 s). */
  timeoutMs?: number;
  /** Wait before the one retry of a webhook (default 1 s). */
  retryDelayMs?: number;
}

export interface Delivery {
  /** `webhook:1`, `webhook:2`… (in config order) or `email`. */
  channel: string;
  ok: boolean;
  error?: string;
}

export interface SendResult {
  /** At least one channel received the alert. */
  sent: boolean;
  deliveries: Delivery[];
}

const KIND_LABEL: Record<AlertKind, string> = {
  failure: 'Failure',
  retry_exhausted: 'Retries exhausted',
  sla: 'SLA breach',
  quality: 'Quality failure',
  recovery: 'Recovered',
};

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_RETRY_DELAY_MS = 1000;
const ERROR_BODY_CHARS = 200;

export class Alerter {
  private transport: Transporter<SMTPSentMessageInfo, SMTPTransportOptions> | undefined;

  private constructor(
    private readonly config: AlertsConfig | undefined,
    private readonly ledger: AlertLedger,
    private readonly windowMs: number,
    private readonly options: AlerterOptions,
  ) {}

  /** No I/O: secrets are resolved and the SMTP transport is created on the first delivery. */
  static create(config: AlertsConfig | undefined, ledger: AlertLedger, options: AlerterOptions = {}): Alerter {
    const windowMs = config ? durationMs(config.dedup, 'alerts.dedup') : 0;
    return new Alerter(config, ledger, windowMs, options);
  }

  /**
   * Delivers the alert to every channel unless its kind is not enabled or its key was alerted
   * within the dedup window. A recovery alert's key is the incident it ends: the incident is
   * forgotten (whether or not recoveries are enabled) and the recovery is not itself deduplicated,
   * so send one only when an incident ends. When every channel fails the claim is released, so the
   * next report of the incident tries again. Ledger errors propagate; delivery errors never do.
   */
  async send(alert: Alert): Promise<SendResult> {
    const config = this.config;
    const skipped: SendResult = { sent: false, deliveries: [] };
    if (!config) return skipped;
    if (alert.kind === 'recovery') await this.ledger.resolve(alert.key);
    if (!config.on.includes(alert.kind) || (config.webhooks.length === 0 && !config.email)) return skipped;
    if (alert.kind !== 'recovery' && !(await this.ledger.claim(alert.key, alert.at, this.windowMs))) {
      this.log('alert suppressed: already sent within the dedup window', { key: alert.key, kind: alert.kind });
      return skipped;
    }

    const jobs = config.webhooks.map((hook, i) =>
      this.attempt(`webhook:${i + 1}`, alert, () => this.postWebhook(hook.url, hook.headers, alert)),
    );
    const email = config.email;
    if (email) jobs.push(this.attempt('email', alert, () => this.sendEmail(email, alert)));
    const deliveries = await Promise.all(jobs);

    const sent = deliveries.some((d) => d.ok);
    if (!sent && alert.kind !== 'recovery') await this.ledger.resolve(alert.key);
    return { sent, deliveries };
  }

  async close(): Promise<void> {
    const transport = this.transport;
    this.transport = undefined;
    transport?.close();
  }

  private async attempt(channel: string, alert: Alert, deliver: () => Promise<void>): Promise<Delivery> {
    try {
      await deliver();
      this.log('alert sent', { channel, key: alert.key, kind: alert.kind });
      return { channel, ok: true };
    } catch (err) {
      const error = secretRegistry.redact(errorMessage(err));
      this.log('alert delivery failed', { channel, key: alert.key, kind: alert.kind, error });
      return { channel, ok: false, error };
    }
  }

  /** POSTs the Slack payload; one retry after a network error, a timeout, a 5xx or a 429. */
  private async postWebhook(urlRef: string, headerRefs: Record<string, string>, alert: Alert): Promise<void> {
    const url = this.resolve(urlRef);
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new Error(`webhook URL must be http(s), got ${parsed.protocol}`);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    for (const [name, value] of Object.entries(headerRefs)) headers[name.toLowerCase()] = this.resolve(value);
    const body = JSON.stringify(slackPayload(alert));
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

    for (let attempt = 1; ; attempt++) {
      const outcome = await postOnce(url, headers, body, timeoutMs);
      if (outcome === undefined) return;
      if (!outcome.retryable || attempt >= 2) {
        throw new Error(`${redact(outcome.error, [url])}${attempt > 1 ? ` (after ${attempt} attempts)` : ''}`);
      }
      await sleep(this.options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS);
    }
  }

  private async sendEmail(email: EmailConfig, alert: Alert): Promise<void> {
    // nodemailer loads only for projects that send email.
    const { createTransport } = await import('nodemailer');
    this.transport ??= createTransport({
      host: email.host,
      port: email.port,
      secure: email.secure,
      auth:
        email.user === undefined
          ? undefined
          : {
              user: this.resolve(email.user),
              pass: email.password === undefined ? undefined : this.resolve(email.password),
            },
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    });
    await this.transport.sendMail(emailMessage(alert, email));
  }

  private resolve(value: string): string {
    const opts: ResolveSecretsOptions = { baseDir: this.options.baseDir ?? process.cwd() };
    if (this.options.env) opts.env = this.options.env;
    return resolveSecrets(value, opts);
  }

  private log(msg: string, fields: Record<string, unknown>): void {
    this.options.log?.(msg, fields);
  }
}

/** One POST; undefined on a 2xx, otherwise what went wrong and whether a retry can help. */
async function postOnce(
  url: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
): Promise<{ error: string; retryable: boolean } | undefined> {
  const { request } = await import('undici'); // only when an alert is sent: start-up of every command that orchestrates
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await request(url, { method: 'POST', headers, body, signal });
    const text = (await res.body.text()).trim();
    if (res.statusCode >= 200 && res.statusCode < 300) return undefined;
    return {
      error: `HTTP ${res.statusCode}${text ? `: ${truncate(text, ERROR_BODY_CHARS)}` : ''}`,
      retryable: res.statusCode >= 500 || res.statusCode === 429,
    };
  } catch (err) {
    return { error: signal.aborted ? `timed out after ${timeoutMs} ms` : errorMessage(err), retryable: true };
  }
}

/** Remembers alerted incidents in this process only (tests, single-process use). */
export class MemoryAlertLedger implements AlertLedger {
  private readonly sent = new Map<string, number>();

  async claim(key: string, at: Date, windowMs: number): Promise<boolean> {
    const last = this.sent.get(key);
    if (last !== undefined && at.getTime() - last < windowMs) return false;
    this.sent.set(key, at.getTime());
    return true;
  }

  async resolve(key: string): Promise<void> {
    this.sent.delete(key);
  }
}

// ---- message formats (pure) ----

export interface SlackText {
  type: 'plain_text' | 'mrkdwn';
  text: string;
}

export type SlackBlock =
  | { type: 'header'; text: SlackText }
  | { type: 'section'; text: SlackText }
  | { type: 'section'; fields: SlackText[] }
  | { type: 'context'; elements: SlackText[] };

export interface SlackPayload {
  /** Notification and fallback text. */
  text: string;
  blocks: SlackBlock[];
}

/**
 * Slack incoming-webhook payload: a header (the title), a section (the text), the fields as
 * mrkdwn fields (10 per section, Slack's limit) and a context line (kind, pipeline, time).
 */
export function slackPayload(alert: Alert): SlackPayload {
  const blocks: SlackBlock[] = [
    {
      type: 'header',
      text: { type: 'plain_text', text: truncate(oneLine(alert.title) || KIND_LABEL[alert.kind], 150) },
    },
  ];
  if (alert.text)
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: truncate(slackEscape(alert.text), 3000) } });
  const fields = Object.entries(alert.fields).map(
    ([name, value]): SlackText => ({
      type: 'mrkdwn',
      text: truncate(`*${slackEscape(name)}*\n${slackEscape(value)}`, 2000),
    }),
  );
  for (let i = 0; i < fields.length; i += 10) blocks.push({ type: 'section', fields: fields.slice(i, i + 10) });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: slackEscape(footer(alert)) }] });
  return { text: truncate(slackEscape(alert.text ? `${alert.title}\n${alert.text}` : alert.title), 3000), blocks };
}

export interface EmailMessage {
  from: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
}

/** The email for an alert: subject `[dip] <title>`, the text, one `name: value` line per field, and the footer. */
export function emailMessage(alert: Alert, email: Pick<EmailConfig, 'from' | 'to'>): EmailMessage {
  const fields = Object.entries(alert.fields);
  const lines = fields.map(([name, value]) => `${name}: ${value.replace(/\r?\n/g, '\n  ')}`).join('\n');
  const text = [alert.text, lines, footer(alert)].filter((part) => part !== '').join('\n\n') + '\n';
  const rows = fields
    .map(
      ([name, value]) =>
        `<tr><th align="left" valign="top">${htmlEscape(name)}</th><td style="white-space:pre-wrap">${htmlEscape(value)}</td></tr>`,
    )
    .join('');
  const html = [
    `<h2>${htmlEscape(alert.title)}</h2>`,
    alert.text ? `<p style="white-space:pre-wrap">${htmlEscape(alert.text)}</p>` : '',
    rows ? `<table cellpadding="4">${rows}</table>` : '',
    `<p style="color:#666">${htmlEscape(footer(alert))}</p>`,
  ].join('');
  return { from: email.from, to: [...email.to], subject: `[dip] ${oneLine(alert.title)}`, text, html };
}

function footer(alert: Alert): string {
  return [KIND_LABEL[alert.kind], alert.pipeline === null ? '' : `pipeline ${alert.pipeline}`, alert.at.toISOString()]
    .filter(Boolean)
    .join(' · ');
}

function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function htmlEscape(text: string): string {
  return slackEscape(text).replace(/"/g, '&quot;');
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
