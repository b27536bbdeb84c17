/**
 * Alert delivery: failures, exhausted retries, SLA breaches and quality failures go to
 * Slack-compatible webhooks and by email. One incident (one alert key) alerts once per dedup
 * window, remembered by an `AlertLedger`; a recovery forgets the incident so the next failure
 * alerts again. A channel that fails never stops the others and never throws out of `send()`.
 *
 * With an `AlertOutbox` (the catalog's, under every orchestrating process) a delivery that fails
 * for a reason that can pass (network, timeout, 5xx, 429, the mail server) is kept and re-sent
 * with exponential backoff (5 s doubling to 5 min, for 24 h) by `deliverDue()`, which any
 * process sharing the catalog runs, so an alert survives the receiver and the sender being
 * down. Failed deliveries are logged as warnings (re-sent later) or errors (given up).
 */
import type { SMTPSentMessageInfo, SMTPTransportOptions, Transporter } from 'nodemailer';
import type { AlertsConfig } from '../config/orchestrate.js';
import { redact, resolveSecrets, secretRegistry, type ResolveSecretsOptions } from '../config/secrets.js';
import { errorMessage } from '../core/errors.js';
import { durationMs } from '../core/time.js';
import type { Alert, AlertKind, AlertLedger, AlertOutbox } from '../catalog/orchestration-types.js';
import { emailMessage, slackPayload } from './alert-messages.js';

export {
  emailMessage,
  slackPayload,
  type EmailMessage,
  type SlackBlock,
  type SlackPayload,
  type SlackText,
} from './alert-messages.js';

export type EmailConfig = NonNullable<AlertsConfig['email']>;
export type AlertLog = (msg: string, fields?: Record<string, unknown>, level?: 'info' | 'warn' | 'error') => void;

/** How failed deliveries are re-sent from the outbox. */
export interface RedeliveryPolicy {
  /** Wait before the first re-send (default 5 s); doubles after each failure. */
  baseMs: number;
  /** Longest wait between re-sends (default 5 min). */
  maxMs: number;
  /** Give up on a delivery this long after the alert (default 24 h). */
  expireMs: number;
}

export const DEFAULT_REDELIVERY: RedeliveryPolicy = { baseMs: 5_000, maxMs: 300_000, expireMs: 86_400_000 };

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
  /** Where failed deliveries wait to be re-sent (default none: a failed delivery is reported, not kept). */
  outbox?: AlertOutbox;
  redelivery?: Partial<RedeliveryPolicy>;
  /** The clock re-sends are scheduled by (default: the system clock). */
  clock?: () => Date;
}

export interface Delivery {
  /** `webhook:1`, `webhook:2`… (in config order) or `email`. */
  channel: string;
  ok: boolean;
  error?: string;
}

/** A delivery, and for a failure whether it may pass (network, timeout, 5xx, 429, the mail server): worth re-sending. */
type Attempted = Delivery & { retryable?: boolean };

/** A delivery error, and whether re-sending later can help. */
class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export interface SendResult {
  /** At least one channel received the alert. */
  sent: boolean;
  deliveries: Delivery[];
  /** Failed deliveries kept in the outbox to be re-sent. */
  queued?: string[];
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_RETRY_DELAY_MS = 1000;
const ERROR_BODY_CHARS = 200;

export class Alerter {
  private transport: Transporter<SMTPSentMessageInfo, SMTPTransportOptions> | undefined;
  private readonly redelivery: RedeliveryPolicy;
  private delivering: Promise<number> | undefined;

  private constructor(
    private config: AlertsConfig | undefined,
    private readonly ledger: AlertLedger,
    private windowMs: number,
    private readonly options: AlerterOptions,
  ) {
    this.redelivery = { ...DEFAULT_REDELIVERY, ...options.redelivery };
  }

  /** No I/O: secrets are resolved and the SMTP transport is created on the first delivery. */
  static create(config: AlertsConfig | undefined, ledger: AlertLedger, options: AlerterOptions = {}): Alerter {
    const windowMs = config ? durationMs(config.dedup, 'alerts.dedup') : 0;
    return new Alerter(config, ledger, windowMs, options);
  }

  /** The project's alerts settings changed (dip serve reloaded the project file). */
  reconfigure(config: AlertsConfig | undefined): void {
    this.config = config;
    this.windowMs = config ? durationMs(config.dedup, 'alerts.dedup') : 0;
    const transport = this.transport;
    this.transport = undefined;
    transport?.close();
  }

  /** Whether alerts of this kind go anywhere (enabled in `on`, with a channel). */
  enabled(kind: AlertKind): boolean {
    const config = this.config;
    return Boolean(config?.on.includes(kind) && (config.webhooks.length > 0 || config.email));
  }

  /**
   * Delivers the alert to every channel unless its kind is not enabled or its key was alerted
   * within the dedup window. A recovery alert's key is the incident it ends: the incident is
   * forgotten (whether or not recoveries are enabled) and the recovery is not itself deduplicated,
   * so send one only when an incident ends. With an outbox, a delivery that failed for a reason
   * that can pass is kept and re-sent later; when every channel failed and nothing was kept the
   * claim is released, so the next report of the incident tries again. Ledger errors propagate;
   * delivery errors never do.
   */
  async send(alert: Alert): Promise<SendResult> {
    const config = this.config;
    const skipped: SendResult = { sent: false, deliveries: [] };
    if (!config) return skipped;
    if (alert.kind === 'recovery') await this.ledger.resolve(alert.key);
    if (!this.enabled(alert.kind)) return skipped;
    if (alert.kind !== 'recovery' && !(await this.ledger.claim(alert.key, alert.at, this.windowMs))) {
      this.log('alert suppressed: already sent within the dedup window', { key: alert.key, kind: alert.kind });
      return skipped;
    }

    const channels = this.channels();
    const deliveries = await Promise.all(
      [...channels].map(([channel, deliver]) => this.attempt(channel, alert, () => deliver(alert), 1)),
    );
    const queued: string[] = [];
    const outbox = this.options.outbox;
    for (const d of deliveries) {
      if (d.ok || !d.retryable || !outbox) continue;
      const now = this.now();
      try {
        await outbox.add({ alert, channel: d.channel, error: d.error ?? '', nextAt: this.nextAt(now, 1), now });
        queued.push(d.channel);
      } catch (err) {
        this.log(
          'alert delivery failed and cannot be kept for a re-send',
          { channel: d.channel, key: alert.key, error: errorMessage(err) },
          'error',
        );
      }
    }

    const sent = deliveries.some((d) => d.ok);
    if (!sent && queued.length === 0 && alert.kind !== 'recovery') await this.ledger.resolve(alert.key);
    const reported = deliveries.map(({ retryable: _, ...d }) => d);
    return queued.length ? { sent, deliveries: reported, queued } : { sent, deliveries: reported };
  }

  /**
   * Re-sends the outbox's due deliveries (one pass at a time per process; processes sharing the
   * catalog take different entries). Returns how many were delivered.
   */
  deliverDue(): Promise<number> {
    this.delivering ??= this.deliverDueOnce().finally(() => (this.delivering = undefined));
    return this.delivering;
  }

  private async deliverDueOnce(): Promise<number> {
    const outbox = this.options.outbox;
    if (!outbox) return 0;
    const now = this.now();
    // Taken entries are not due again for a while, so another process does not send them meanwhile.
    const due = await outbox.takeDue(now, new Date(now.getTime() + 60_000), 50);
    const channels = this.channels();
    let delivered = 0;
    for (const entry of due) {
      const deliver = channels.get(entry.channel);
      if (!deliver) {
        await outbox.drop(entry.id);
        this.log(
          'alert not re-sent: its channel is no longer configured',
          { channel: entry.channel, key: entry.alert.key },
          'warn',
        );
        continue;
      }
      const attempt = entry.attempts + 1;
      const d = await this.attempt(entry.channel, entry.alert, () => deliver(entry.alert), attempt, entry.createdAt);
      if (d.ok) {
        await outbox.drop(entry.id);
        delivered++;
        continue;
      }
      const at = this.now();
      const expired = at.getTime() - entry.createdAt.getTime() >= this.redelivery.expireMs;
      if (!d.retryable || expired) {
        await outbox.drop(entry.id);
        this.log(
          `alert given up after ${plural(attempt, 'attempt')}`,
          { channel: entry.channel, key: entry.alert.key, kind: entry.alert.kind, error: d.error },
          'error',
        );
      } else await outbox.failed(entry.id, attempt, this.nextAt(at, attempt), d.error ?? '');
    }
    return delivered;
  }

  async close(): Promise<void> {
    await this.delivering?.catch(() => undefined);
    const transport = this.transport;
    this.transport = undefined;
    transport?.close();
  }

  /** The configured channels by name: `webhook:1`… in config order, then `email`. */
  private channels(): Map<string, (alert: Alert) => Promise<void>> {
    const out = new Map<string, (alert: Alert) => Promise<void>>();
    const config = this.config;
    if (!config) return out;
    for (const [i, hook] of config.webhooks.entries())
      out.set(`webhook:${i + 1}`, (alert) => this.postWebhook(hook.url, hook.headers, alert));
    const email = config.email;
    if (email) out.set('email', (alert) => this.sendEmail(email, alert));
    return out;
  }

  /** When the re-send after `attempts` failed attempts is due. */
  private nextAt(now: Date, attempts: number): Date {
    const wait = Math.min(this.redelivery.maxMs, this.redelivery.baseMs * 2 ** Math.max(0, attempts - 1));
    return new Date(now.getTime() + wait);
  }

  private now(): Date {
    return this.options.clock?.() ?? new Date();
  }

  private async attempt(
    channel: string,
    alert: Alert,
    deliver: () => Promise<void>,
    attempt: number,
    since?: Date,
  ): Promise<Attempted> {
    try {
      await deliver();
      this.log(attempt > 1 ? 'alert re-sent' : 'alert sent', {
        channel,
        key: alert.key,
        kind: alert.kind,
        ...(attempt > 1 ? { attempt, queued_since: since?.toISOString() } : {}),
      });
      return { channel, ok: true };
    } catch (err) {
      const error = secretRegistry.redact(errorMessage(err));
      const retryable = err instanceof DeliveryError ? err.retryable : true;
      const kept = retryable && this.options.outbox !== undefined;
      this.log(
        kept ? 'alert delivery failed; it will be re-sent' : 'alert delivery failed',
        { channel, key: alert.key, kind: alert.kind, error, ...(attempt > 1 ? { attempt } : {}) },
        kept ? 'warn' : 'error',
      );
      return { channel, ok: false, error, retryable };
    }
  }

  /** POSTs the Slack payload; one retry after a network error, a timeout, a 5xx or a 429. */
  private async postWebhook(urlRef: string, headerRefs: Record<string, string>, alert: Alert): Promise<void> {
    const url = this.resolve(urlRef);
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new DeliveryError(`webhook URL must be http(s), got ${parsed.protocol}`, false);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    for (const [name, value] of Object.entries(headerRefs)) headers[name.toLowerCase()] = this.resolve(value);
    const body = JSON.stringify(slackPayload(alert));
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

    for (let attempt = 1; ; attempt++) {
      const outcome = await postOnce(url, headers, body, timeoutMs);
      if (outcome === undefined) return;
      if (!outcome.retryable || attempt >= 2) {
        throw new DeliveryError(
          `${redact(outcome.error, [url])}${attempt > 1 ? ` (after ${attempt} attempts)` : ''}`,
          outcome.retryable,
        );
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
    try {
      return resolveSecrets(value, opts);
    } catch (err) {
      // A missing variable or file does not appear by waiting: not re-sent.
      throw new DeliveryError(errorMessage(err), false);
    }
  }

  private log(msg: string, fields: Record<string, unknown>, level: 'info' | 'warn' | 'error' = 'info'): void {
    this.options.log?.(msg, fields, level);
  }
}

/** `1 attempt`, `2 attempts`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
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

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
