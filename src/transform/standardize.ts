/**
 * Over 400 lines: one conversion per target type, side by side.
 *
 * Standardization of one silver column as SQL: trim, empty → null, case, value mapping, and the
 * conversion to a declared type (formats, time zones, UTC timestamps with the original offset
 * kept on request). Pure builders: the expressions go into the silver SELECT; conversions that can
 * fail come with a condition and a reason, so failing rows go to quarantine instead of failing the run.
 *
 * Every expression is independent of the session TimeZone setting. Timestamps always land as
 * TIMESTAMP WITH TIME ZONE (a UTC instant).
 */
import type { SilverColumnConfig } from '../config/silver.js';
import { ConfigError } from '../core/errors.js';
import type { Engine } from '../lake/engine.js';
import { lit } from '../lake/sql.js';
import {
  castCannotFail,
  KNOWN_TYPES,
  NUMERIC_KINDS,
  parseDuckType,
  TEMPORAL_KINDS,
  TS_TZ,
  type TypeInfo,
  typeInfo,
} from '../lake/duck-types.js';

export interface StandardizedColumn {
  /** Output column name. */
  name: string;
  /** SQL: the standardized value. */
  expr: string;
  /** DuckDB type of `expr`. */
  type: string;
  /**
   * SQL boolean, TRUE when the input value could not be converted (declared type, format, time
   * zone): the row goes to quarantine. Absent when conversion cannot fail. Equal to
   * `(preSql) IS NOT NULL AND (expr) IS NULL`.
   */
  failSql?: string;
  /** SQL VARCHAR reason for failSql rows, e.g. `created_at: "31/02/2024" does not match format %d/%m/%Y`. */
  reasonSql?: string;
  /** The value handed to the conversion (after trim, empty → null, case and map); set with failSql. */
  preSql?: string;
  /** keep_offset: the extra <name>_offset column (VARCHAR like +02:00; Z → +00:00). */
  offset?: { name: string; expr: string };
}

export interface StandardizeDefaults {
  trim: boolean;
  emptyAsNull: boolean;
  /** Zone of naive timestamps (IANA name). */
  timezone: string;
  /**
   * Zone names to accept (e.g. from duckdbTimeZones(engine), DuckDB's own ICU list); without it
   * names are checked with Node's Intl, which agrees on IANA names but may know newer ones.
   */
  zones?: ReadonlySet<string>;
}

// ---------------------------------------------------------------------------------------------
// Time zones

/** Names DuckDB (ICU) gives UTC under; the session may be set to any of them. */
const UTC_NAMES = [
  'UTC',
  'Etc/UTC',
  'Etc/UCT',
  'UCT',
  'Etc/Universal',
  'Universal',
  'Etc/Zulu',
  'Zulu',
  'GMT',
  'Etc/GMT',
  'GMT0',
  'Etc/GMT0',
  'GMT+0',
  'GMT-0',
  'Etc/GMT+0',
  'Etc/GMT-0',
  'Greenwich',
  'Etc/Greenwich',
];
const UTC_SET = new Set(UTC_NAMES.map((n) => n.toLowerCase()));

interface Zone {
  name: string;
  utc: boolean;
  /** Names under which the session TimeZone is this zone (for the fast path). */
  sessionNames: string[];
}

function resolveZone(zone: string, column: string, fromColumn: boolean, known: ReadonlySet<string> | undefined): Zone {
  const unknown = () => {
    const where = fromColumn ? `columns.${column}.timezone` : `timezone (used by column ${column})`;
    return new ConfigError(
      `${where}: unknown time zone ${JSON.stringify(zone)}; expected an IANA name such as UTC, Europe/Paris or America/New_York`,
    );
  };
  let canonical: string;
  try {
    canonical = new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    if (!known?.has(zone)) throw unknown();
    canonical = zone;
  }
  if (known && !known.has(zone) && ![...known].some((k) => k.toLowerCase() === zone.toLowerCase())) throw unknown();
  const utc = UTC_SET.has(zone.toLowerCase()) || UTC_SET.has(canonical.toLowerCase());
  return { name: zone, utc, sessionNames: utc ? UTC_NAMES : [...new Set([zone, canonical])] };
}

/** A naive TIMESTAMP read as wall time in `zone`, as a UTC instant (independent of the session zone). */
function naiveToInstant(ts: string, zone: Zone): string {
  return zone.utc ? `make_timestamptz(epoch_us(${ts}))` : `timezone(${lit(zone.name)}, ${ts})`;
}

/** Text ends in a UTC offset or zone: Z, ±HH:MM, ±HHMM, ±HH after a time, or a zone name. */
function hasOffsetSql(text: string): string {
  return `regexp_matches(${text}, '(?:[+-]\\d\\d:?\\d\\d|:\\d\\d(?:\\.\\d+)?[+-]\\d\\d|[A-Za-z])\\s*$')`;
}

/**
 * Text to a UTC instant: text with an offset is that instant; naive text is wall time in `zone`.
 * When the session TimeZone is `zone` a plain cast does both, and the optimizer folds the
 * condition away (current_setting is a constant), so that case costs one cast.
 */
function textToInstant(text: string, zone: Zone): string {
  const session = `current_setting('TimeZone') IN (${zone.sessionNames.map(lit).join(', ')})`;
  return `CASE WHEN ${session} OR ${hasOffsetSql(text)} THEN TRY_CAST(${text} AS ${TS_TZ}) ELSE ${naiveToInstant(`TRY_CAST(${text} AS TIMESTAMP)`, zone)} END`;
}

/** Minutes (SQL) → '+HH:MM' text. */
function offsetText(minutes: string): string {
  return `CASE WHEN ${minutes} IS NULL THEN NULL ELSE printf('%s%02d:%02d', CASE WHEN ${minutes} < 0 THEN '-' ELSE '+' END, abs(${minutes}) // 60, abs(${minutes}) % 60) END`;
}

/** Offset of `zone` at a UTC instant, in minutes. */
function zoneOffsetMinutes(instant: string, zone: Zone): string {
  if (zone.utc) return `CASE WHEN ${instant} IS NULL THEN NULL ELSE 0 END`;
  return `((epoch_us(timezone(${lit(zone.name)}, ${instant})) - epoch_us(${instant})) // 60000000)`;
}

// ---------------------------------------------------------------------------------------------
// Map

type MapValue = string | number | boolean | null;

/** The type mapped values give when no type is declared. */
function impliedMapType(values: MapValue[], input: TypeInfo): TypeInfo {
  const present = values.filter((v): v is string | number | boolean => v !== null);
  if (present.length === 0) return input;
  if (present.every((v) => typeof v === 'string')) return KNOWN_TYPES['VARCHAR'] as TypeInfo;
  if (present.every((v) => typeof v === 'boolean')) return KNOWN_TYPES['BOOLEAN'] as TypeInfo;
  if (present.every((v) => typeof v === 'number')) {
    const ints = present.every((v) => Number.isInteger(v));
    if (NUMERIC_KINDS.has(input.kind) && (input.kind !== 'integer' || ints)) return input;
    return (ints ? KNOWN_TYPES['BIGINT'] : KNOWN_TYPES['DOUBLE']) as TypeInfo;
  }
  return KNOWN_TYPES['VARCHAR'] as TypeInfo;
}

function valueText(v: MapValue): string {
  return v === null ? 'NULL' : lit(String(v));
}

/** A key as a literal of the input's kind, or undefined when it is not one. */
function typedKey(key: string, input: TypeInfo): string | undefined {
  if (input.kind === 'integer') return /^-?\d+$/.test(key) ? key : undefined;
  if (input.kind === 'float' || input.kind === 'decimal')
    return /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(key) ? key : undefined;
  if (input.kind === 'boolean') return /^(true|false)$/i.test(key) ? key.toUpperCase() : undefined;
  return undefined;
}

function caseWhen(subject: string, pairs: [string, string][], otherwise: string): string {
  return `CASE ${subject} ${pairs.map(([k, v]) => `WHEN ${k} THEN ${v}`).join(' ')} ELSE ${otherwise} END`;
}

// ---------------------------------------------------------------------------------------------

function formatHasOffset(format: string): boolean {
  return /%[zZ]/.test(format);
}

/**
 * The standardized column. `inputExpr`/`inputType`: the flattened input column; `cfg`: its silver
 * column settings (may be undefined). Text inputs are trimmed (default on), then empty → null,
 * then case, then map (keys compared with the text after trim and case; with `case` set the keys
 * are case-folded too), then converted to the declared type: TRY_CAST, or try_strptime with a
 * `format`. Without a declared type a map whose values are all numbers / booleans gives that type.
 * Timestamps (declared TIMESTAMP or TIMESTAMPTZ, and naive TIMESTAMP inputs) become
 * TIMESTAMP WITH TIME ZONE: naive values are read in `timezone` (column, else table default).
 * Non-text inputs skip trim / empty / case; a map looks them up by value.
 */
export function standardizeColumn(
  name: string,
  inputExpr: string,
  inputType: string,
  cfg: SilverColumnConfig | undefined,
  defaults: StandardizeDefaults,
): StandardizedColumn {
  const where = `columns.${name}`;
  const input = typeInfo(inputType);
  const declared = cfg?.type === undefined ? undefined : declaredType(cfg.type, where);
  const format = cfg?.format;
  const zoneOf = () =>
    resolveZone(cfg?.timezone ?? defaults.timezone, name, cfg?.timezone !== undefined, defaults.zones);
  if (cfg?.timezone !== undefined) zoneOf(); // an invalid column zone is an error even when unused

  // 1. The text stage (VARCHAR in, VARCHAR out), for text inputs and for lookups in a map.
  const hasMap = cfg?.map !== undefined && Object.keys(cfg.map).length > 0;
  // JSON scalars to convert or map are read as their text ("abc" → abc).
  const toText = input.kind === 'json' && ((declared !== undefined && declared.kind !== 'json') || hasMap);
  let value = toText ? `json_extract_string(${inputExpr}, '$')` : inputExpr;
  let current: TypeInfo = toText ? (KNOWN_TYPES['VARCHAR'] as TypeInfo) : input;
  if (current.kind === 'text') {
    if (cfg?.trim ?? defaults.trim) value = `trim(${value})`;
    if (cfg?.empty_as_null ?? defaults.emptyAsNull) value = `nullif(${value}, '')`;
    if (cfg?.case === 'lower') value = `lower(${value})`;
    else if (cfg?.case === 'upper') value = `upper(${value})`;
  }

  let target: TypeInfo | undefined = declared;
  if (cfg?.map && hasMap) {
    const entries = foldKeys(Object.entries(cfg.map), current.kind === 'text' ? cfg.case : undefined, where);
    const implied =
      target ??
      impliedMapType(
        entries.map(([, v]) => v),
        current,
      );
    target = implied;
    const keys = entries.map(([k]) => typedKey(k, current));
    if (
      current.kind !== 'text' &&
      keys.every((k) => k !== undefined) &&
      (implied.type === current.type || implied.kind === 'text')
    ) {
      // Typed lookup: no cast of the input unless the result is text.
      const asTarget = (v: MapValue) =>
        v === null ? 'NULL' : implied.kind === 'text' ? lit(String(v)) : `CAST(${lit(String(v))} AS ${implied.type})`;
      const otherwise = implied.kind === 'text' ? `CAST(${value} AS VARCHAR)` : value;
      value = caseWhen(
        value,
        entries.map(([, v], i) => [keys[i] as string, asTarget(v)]),
        otherwise,
      );
      current = implied;
    } else {
      const text = current.kind === 'text' ? value : `CAST(${value} AS VARCHAR)`;
      value = caseWhen(
        text,
        entries.map(([k, v]) => [lit(k), valueText(v)]),
        text,
      );
      current = KNOWN_TYPES['VARCHAR'] as TypeInfo;
    }
  }

  if (format !== undefined && (target === undefined || !TEMPORAL_KINDS.has(target.kind))) {
    throw new ConfigError(
      `${where}.format needs type DATE, TIME, TIMESTAMP or TIMESTAMPTZ (it is ${target ? target.type : 'not declared'})`,
    );
  }

  // 2. The conversion.
  const out: StandardizedColumn = { name, expr: value, type: current.type };
  const pre = value;
  let conversion: { expr: string; type: string; expectation: string } | undefined;
  let instant: string | undefined; // timestamp results, for keep_offset
  let offsetMinutes: string | undefined;

  const isTimestamp = (t: TypeInfo) => t.kind === 'timestamp' || t.kind === 'timestamptz';
  const wantsTimestamp = target ? isTimestamp(target) : isTimestamp(current);
  if (wantsTimestamp) {
    const zone = zoneOf();
    if (current.kind === 'timestamptz') {
      out.expr = value;
      out.type = TS_TZ;
      instant = value;
      offsetMinutes = `CASE WHEN ${value} IS NULL THEN NULL ELSE 0 END`;
    } else if (current.kind === 'timestamp' || current.kind === 'date') {
      const ts = current.kind === 'date' ? `CAST(${value} AS TIMESTAMP)` : value;
      out.expr = naiveToInstant(ts, zone);
      out.type = TS_TZ;
      instant = out.expr;
      offsetMinutes = zoneOffsetMinutes(instant, zone);
    } else {
      const text = textOf(value, current, format, where, target);
      const expectation = format
        ? `does not match format ${format}`
        : `is not a valid ${displayType(cfg?.type ?? 'TIMESTAMP')}`;
      let expr: string;
      if (format) {
        const parsed = `try_strptime(${text}, ${lit(format)})`;
        expr = formatHasOffset(format) ? parsed : naiveToInstant(parsed, zone);
      } else {
        expr = textToInstant(text, zone);
      }
      conversion = { expr, type: TS_TZ, expectation };
      instant = expr;
      if (cfg?.keep_offset) offsetMinutes = textOffsetMinutes(text, expr, format, zone, where);
    }
  } else if (target && target.kind === 'date') {
    if (current.kind === 'date') {
      out.expr = value;
    } else if (current.kind === 'timestamp') {
      out.expr = `CAST(${value} AS DATE)`;
    } else if (current.kind === 'timestamptz') {
      out.expr = `CAST(timezone(${lit(zoneOf().name)}, ${value}) AS DATE)`;
    } else {
      const text = textOf(value, current, format, where, target);
      const parsed = format ? `try_strptime(${text}, ${lit(format)})` : undefined;
      const asDate =
        parsed === undefined
          ? `TRY_CAST(${text} AS DATE)`
          : formatHasOffset(format ?? '')
            ? `CAST(timezone(${lit(zoneOf().name)}, ${parsed}) AS DATE)`
            : `CAST(${parsed} AS DATE)`;
      conversion = {
        expr: asDate,
        type: 'DATE',
        expectation: format ? `does not match format ${format}` : `is not a valid ${displayType(cfg?.type ?? 'DATE')}`,
      };
    }
    out.type = 'DATE';
  } else if (target && target.kind === 'time') {
    if (current.kind === 'time') out.expr = value;
    else if (current.kind === 'timestamp') out.expr = `CAST(${value} AS TIME)`;
    else if (current.kind === 'timestamptz') out.expr = `CAST(timezone(${lit(zoneOf().name)}, ${value}) AS TIME)`;
    else {
      const text = textOf(value, current, format, where, target);
      const parsed = format ? `try_strptime(${text}, ${lit(format)})` : undefined;
      const asTime =
        parsed === undefined
          ? `TRY_CAST(${text} AS TIME)`
          : formatHasOffset(format ?? '')
            ? `CAST(timezone(${lit(zoneOf().name)}, ${parsed}) AS TIME)`
            : `CAST(${parsed} AS TIME)`;
      conversion = {
        expr: asTime,
        type: 'TIME',
        expectation: format ? `does not match format ${format}` : `is not a valid ${displayType(cfg?.type ?? 'TIME')}`,
      };
    }
    out.type = 'TIME';
  } else if (target && target.type !== current.type) {
    if (current.kind === 'timestamptz' && target.kind === 'text') {
      // A session-independent rendering of the instant (a plain cast prints it in the session zone).
      out.expr = `CAST(timezone('UTC', ${value}) AS VARCHAR) || '+00'`;
    } else if (castCannotFail(current, target)) {
      out.expr = `CAST(${value} AS ${target.type})`;
    } else {
      conversion = {
        expr: `TRY_CAST(${value} AS ${target.type})`,
        type: target.type,
        expectation: `is not a valid ${displayType(cfg?.type ?? target.type)}`,
      };
    }
    out.type = target.type;
  }

  if (conversion) {
    out.expr = conversion.expr;
    out.type = conversion.type;
    out.failSql = `(${pre}) IS NOT NULL AND (${conversion.expr}) IS NULL`;
    const shown = current.kind === 'text' ? pre : `CAST(${pre} AS VARCHAR)`;
    out.reasonSql = `${lit(`${name}: "`)} || ${shown} || ${lit(`" ${conversion.expectation}`)}`;
    out.preSql = pre;
  }

  if (cfg?.keep_offset) {
    if (instant === undefined || offsetMinutes === undefined) {
      throw new ConfigError(`${where}.keep_offset applies to timestamps (declare type TIMESTAMP or TIMESTAMPTZ)`);
    }
    out.offset = { name: `${name}_offset`, expr: offsetText(offsetMinutes) };
  }
  return out;
}

function declaredType(text: string, where: string): TypeInfo {
  try {
    parseDuckType(text); // rejects text that is not a type (stray quotes, unbalanced parentheses)
  } catch (err) {
    throw new ConfigError(`${where}.type: ${JSON.stringify(text)} is not a DuckDB type`, { cause: err });
  }
  if (/;|--|\/\*/.test(text)) throw new ConfigError(`${where}.type: ${JSON.stringify(text)} is not a DuckDB type`);
  return typeInfo(text);
}

function displayType(text: string): string {
  return text.trim().replace(/\s+/g, ' ').toUpperCase();
}

/** The text a temporal conversion parses; numbers need a format (no guessing epochs or yyyymmdd). */
function textOf(
  value: string,
  current: TypeInfo,
  format: string | undefined,
  where: string,
  target: TypeInfo | undefined,
): string {
  if (current.kind === 'text') return value;
  if (NUMERIC_KINDS.has(current.kind) && format === undefined) {
    throw new ConfigError(
      `${where}: a ${current.type} column cannot become ${target?.type ?? 'a timestamp'} without a format (e.g. format: "%Y%m%d"); for epoch numbers use from: to_timestamp(<column>)`,
    );
  }
  return `CAST(${value} AS VARCHAR)`;
}

/** Minutes of the offset written in timestamp text; naive text: the zone's offset at the instant. */
function textOffsetMinutes(
  text: string,
  instant: string,
  format: string | undefined,
  zone: Zone,
  where: string,
): string {
  if (format === undefined) {
    // Text with an offset: its wall time (a TIMESTAMP cast ignores the offset) minus the instant.
    const written = `((epoch_us(TRY_CAST(${text} AS TIMESTAMP)) - epoch_us(${instant})) // 60000000)`;
    return `CASE WHEN ${hasOffsetSql(text)} THEN ${written} ELSE ${zoneOffsetMinutes(instant, zone)} END`;
  }
  if (/%Z/.test(format)) {
    throw new ConfigError(`${where}.keep_offset needs a numeric offset (%z) in the format, not a zone name (%Z)`);
  }
  if (!/%z/.test(format)) return zoneOffsetMinutes(instant, zone);
  // The last ±HH[:]MM in the text is the one %z read.
  const m = `(regexp_extract(${text}, '^.*([+-])(\\d\\d):?(\\d\\d)', ['s', 'h', 'm']))`;
  return `CASE WHEN ${instant} IS NULL THEN NULL ELSE (CASE WHEN ${m}.s = '-' THEN -1 ELSE 1 END) * (TRY_CAST(${m}.h AS INTEGER) * 60 + TRY_CAST(${m}.m AS INTEGER)) END`;
}

/** Map entries with keys case-folded like the text they are compared with. */
function foldKeys(
  entries: [string, MapValue][],
  kase: 'lower' | 'upper' | undefined,
  where: string,
): [string, MapValue][] {
  if (!kase) return entries;
  const out = new Map<string, MapValue>();
  for (const [k, v] of entries) {
    const key = kase === 'lower' ? k.toLowerCase() : k.toUpperCase();
    if (out.has(key) && out.get(key) !== v) {
      throw new ConfigError(
        `${where}.map: keys differing only in case map to different values (${JSON.stringify(key)}), but case: ${kase} makes them equal`,
      );
    }
    out.set(key, v);
  }
  return [...out];
}

/**
 * Time zone names DuckDB knows (its ICU list is what SQL accepts); for checking zones against the
 * engine rather than Node's Intl, which agrees on IANA names.
 */
export async function duckdbTimeZones(engine: Engine): Promise<Set<string>> {
  const rows = await engine.all('SELECT name FROM pg_timezone_names()');
  return new Set(rows.map((r) => String(r['name'])));
}
