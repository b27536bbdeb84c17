import { EMAIL_PATTERN } from '../../core/email.js';
import { ident, lit } from '../../lake/sql.js';
import { textSql, columnCheckName, neverNull, resolveColumn, shownSql, valueSql } from './shared.js';
import type { CheckConfig } from '../../config/silver.js';
import type { RowCheckKind } from './types.js';

const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = `${OCTET}(?:\\.${OCTET}){3}`;
const H = '[0-9a-fA-F]{1,4}';
const IPV6 = [
  `(?:${H}:){7}${H}`,
  `(?:${H}:){1,7}:`,
  `(?:${H}:){1,6}:${H}`,
  `(?:${H}:){1,5}(?::${H}){1,2}`,
  `(?:${H}:){1,4}(?::${H}){1,3}`,
  `(?:${H}:){1,3}(?::${H}){1,4}`,
  `(?:${H}:){1,2}(?::${H}){1,5}`,
  `${H}:(?::${H}){1,6}`,
  `:(?:(?::${H}){1,7}|:)`,
  `[fF][eE]80:(?::[0-9a-fA-F]{0,4}){0,4}%[0-9a-zA-Z]+`,
  `::(?:[fF]{4}(?::0{1,4})?:)?${IPV4}`,
  `(?:${H}:){1,4}:${IPV4}`,
  `(?:${H}:){6}${IPV4}`,
].join('|');
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const URL = `(?i)https?://(?:[^\\s/?#@]+@)?(?:${LABEL}(?:\\.${LABEL})*|\\[[0-9a-f:.]+\\])(?::[0-9]{1,5})?(?:[/?#]\\S*)?`;
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
/** 7 to 15 digits (E.164 allows 15), an optional leading +, spaces ( ) . - between them. */
const PHONE = '\\+?(?:[ ().-]*[0-9]){7,15}[ ().-]*';
const ISO_DATE = '[0-9]{4}-[0-9]{2}-[0-9]{2}';
const ISO_TIMESTAMP = `${ISO_DATE}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{1,9})?)?(?:Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?`;

type FormatName = Extract<CheckConfig, { type: 'format' }>['format'];

const FORMAT_TEXT: Record<FormatName, string> = {
  email: 'an email address',
  url: 'an http(s) URL',
  uuid: 'a UUID',
  ipv4: 'an IPv4 address',
  ipv6: 'an IPv6 address',
  phone: 'a phone number (7 to 15 digits)',
  iso_date: 'an ISO date (YYYY-MM-DD)',
  iso_timestamp: 'an ISO timestamp (YYYY-MM-DDThh:mm[:ss[.f]][Z|±hh:mm])',
};

/** SQL boolean: the VARCHAR `v` (not null) has the format. */
function formatOkSql(format: FormatName, v: string): string {
  const re = (pattern: string) => `regexp_full_match(${v}, ${lit(pattern)})`;
  switch (format) {
    case 'email':
      return re(EMAIL_PATTERN);
    case 'url':
      return re(URL);
    case 'uuid':
      return re(UUID);
    case 'ipv4':
      return re(IPV4);
    case 'ipv6':
      return re(IPV6);
    case 'phone':
      return re(PHONE);
    case 'iso_date':
      return `(${re(ISO_DATE)} AND try_cast(${v} AS DATE) IS NOT NULL)`;
    case 'iso_timestamp':
      return `(${re(ISO_TIMESTAMP)} AND try_cast(left(${v}, 10) AS DATE) IS NOT NULL)`;
  }
}

/** The `format` check (row level): its default name, its compilation to SQL over a row. */
export const formatCheck: RowCheckKind<'format'> = {
  type: 'format',
  level: 'row',
  defaultName: (check) => columnCheckName(check),
  compile(where, check) {
    const col = resolveColumn(where, check.column);
    const v = textSql(col);
    return {
      columns: [col.name],
      failSql: neverNull(`${ident(col.name)} IS NOT NULL AND NOT coalesce(${formatOkSql(check.format, v)}, false)`),
      reasonSql: `concat(${lit(`${col.name} = `)}, ${shownSql(col)}, ${lit(` is not ${FORMAT_TEXT[check.format]}`)})`,
      valueSql: valueSql(col),
    };
  },
};
