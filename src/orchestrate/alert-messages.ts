/**
 * The formats of an alert (pure): the Slack incoming-webhook payload and the email message.
 */
import type { AlertsConfig } from '../config/orchestrate.js';
import type { Alert, AlertKind } from '../catalog/orchestration-types.js';

type EmailConfig = NonNullable<AlertsConfig['email']>;

export const KIND_LABEL: Record<AlertKind, string> = {
  failure: 'Failure',
  retry_exhausted: 'Retries exhausted',
  sla: 'SLA breach',
  quality: 'Quality failure',
  recovery: 'Recovered',
};

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
  const text = `${[alert.text, lines, footer(alert)].filter((part) => part !== '').join('\n\n')}\n`;
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
