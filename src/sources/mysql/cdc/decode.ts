/**
 * Binlog row values the binlog library decodes lossily or not at all, decoded here into the
 * exact text the server prints for the same value over the text protocol (what the snapshot
 * reads), from the row-event bytes (the storage formats of sql/field.cc, my_time.c,
 * decimal.c):
 *
 * - DECIMAL: every digit (the library returns a float);
 * - TIMESTAMP: UTC (the library formats in the process's time zone), all fractional digits,
 *   the zero timestamp as '0000-00-00 00:00:00' (rendered NULL like every zero date);
 * - DATETIME: all fractional digits (decoded here too, not left to the library);
 * - TIME: signed durations with fractions (±838:59:59.999999);
 * - YEAR 0000 (the library says 1900);
 * - ENUM and SET members with quotes, backslashes or commas, and the empty ENUM error value;
 * - spatial values as WKT, as MariaDB's ST_AsText prints them;
 * - MariaDB's UUID, INET4 and INET6 (stored as fixed binary strings);
 * - MySQL's binary JSON as the server prints it (`{"a": [1, 2]}`).
 */

const COMPRESSED_BYTES = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4] as const;
const digitBytes = (digits: number): number => COMPRESSED_BYTES[digits] as number;

/** DECIMAL(precision, scale) in its binary form, as the server prints it ('-12.50', '0.001'). */
export function decimalText(bytes: Buffer, precision: number, scale: number): string {
  const intg = precision - scale;
  const intg0 = Math.floor(intg / 9);
  const intg0x = intg - intg0 * 9;
  const frac0 = Math.floor(scale / 9);
  const frac0x = scale - frac0 * 9;
  const b = Buffer.from(bytes.subarray(0, decimalSize(precision, scale)));
  const negative = ((b[0] as number) & 0x80) === 0;
  b[0] = (b[0] as number) ^ 0x80;
  if (negative) for (let i = 0; i < b.length; i++) b[i] = (b[i] as number) ^ 0xff;
  let pos = 0;
  let integer = '';
  if (intg0x > 0) {
    integer += String(b.readUIntBE(pos, digitBytes(intg0x)));
    pos += digitBytes(intg0x);
  }
  for (let i = 0; i < intg0; i++, pos += 4) integer += String(b.readUInt32BE(pos)).padStart(9, '0');
  let fraction = '';
  for (let i = 0; i < frac0; i++, pos += 4) fraction += String(b.readUInt32BE(pos)).padStart(9, '0');
  if (frac0x > 0) fraction += String(b.readUIntBE(pos, digitBytes(frac0x))).padStart(frac0x, '0');
  integer = integer.replace(/^0+/, '') || '0';
  const zero = integer === '0' && !/[1-9]/.test(fraction);
  return `${negative && !zero ? '-' : ''}${integer}${scale > 0 ? `.${fraction}` : ''}`;
}

/** Bytes a DECIMAL(precision, scale) takes in a row image. */
export function decimalSize(precision: number, scale: number): number {
  const intg = precision - scale;
  return Math.floor(intg / 9) * 4 + digitBytes(intg % 9) + Math.floor(scale / 9) * 4 + digitBytes(scale % 9);
}

/** Bytes the fractional part of a TIME2, DATETIME2 or TIMESTAMP2 with `decimals` digits takes. */
export const fractionSize = (decimals: number): number => Math.ceil(decimals / 2);

/** The fraction stored after a DATETIME2/TIMESTAMP2 (big-endian, unsigned), in microseconds. */
export function fractionMicros(bytes: Buffer, decimals: number): number {
  const size = fractionSize(decimals);
  if (size === 0) return 0;
  return bytes.readUIntBE(0, size) * 10 ** (2 * (3 - size));
}

const fractionText = (micros: number, decimals: number): string =>
  decimals > 0 ? `.${String(micros).padStart(6, '0').slice(0, decimals)}` : '';
const pad2 = (n: number): string => String(n).padStart(2, '0');

/** TIMESTAMP (seconds since the epoch) as UTC text; 0 is the zero timestamp. */
export function timestampText(seconds: number, micros: number, decimals: number): string {
  if (seconds === 0 && micros === 0) return `0000-00-00 00:00:00${fractionText(0, decimals)}`;
  return `${new Date(seconds * 1000).toISOString().slice(0, 19).replace('T', ' ')}${fractionText(micros, decimals)}`;
}

/** DATETIME2 (40-bit packed, then the fraction) as the server prints it. */
export function datetime2Text(bytes: Buffer, decimals: number): string {
  const packed = bytes.readUIntBE(0, 5) - 0x8000000000;
  const negative = packed < 0;
  const abs = Math.abs(packed);
  const ymd = Math.floor(abs / 2 ** 17);
  const hms = abs % 2 ** 17;
  const ym = Math.floor(ymd / 32);
  const year = Math.floor(ym / 13);
  const micros = fractionMicros(bytes.subarray(5), decimals);
  const date = `${String(year).padStart(4, '0')}-${pad2(ym % 13)}-${pad2(ymd % 32)}`;
  const time = `${pad2(Math.floor(hms / 4096))}:${pad2(Math.floor(hms / 64) % 64)}:${pad2(hms % 64)}`;
  return `${negative ? '-' : ''}${date} ${time}${fractionText(micros, decimals)}`;
}

/** TIME2 (MySQL 5.6+ and MariaDB's mysql56_temporal_format) as the server prints it. */
export function time2Text(bytes: Buffer, decimals: number): string {
  const INT_OFS = 0x800000;
  let packed: number;
  if (decimals >= 5) {
    packed = bytes.readUIntBE(0, 6) - 0x800000000000;
  } else {
    let intpart = bytes.readUIntBE(0, 3) - INT_OFS;
    let frac = 0;
    if (decimals >= 3) {
      frac = bytes.readUInt16BE(3);
      if (intpart < 0 && frac !== 0) {
        intpart += 1;
        frac -= 0x10000;
      }
      frac *= 100;
    } else if (decimals >= 1) {
      frac = bytes.readUInt8(3);
      if (intpart < 0 && frac !== 0) {
        intpart += 1;
        frac -= 0x100;
      }
      frac *= 10000;
    }
    packed = intpart * 2 ** 24 + frac;
  }
  const negative = packed < 0;
  const abs = Math.abs(packed);
  const hms = Math.floor(abs / 2 ** 24);
  const micros = abs % 2 ** 24;
  const hour = Math.floor(hms / 4096) % 1024;
  const minute = Math.floor(hms / 64) % 64;
  const second = hms % 64;
  return `${negative ? '-' : ''}${pad2(hour)}:${pad2(minute)}:${pad2(second)}${fractionText(micros, decimals)}`;
}

/** Bytes a TIME2 with `decimals` digits takes. */
export const time2Size = (decimals: number): number => 3 + fractionSize(decimals);

/** The members of an ENUM or SET from its COLUMN_TYPE: enum('a','it''s','back\\slash'). */
export function typeMembers(columnType: string): string[] {
  const open = columnType.indexOf('(');
  const members: string[] = [];
  let i = open + 1;
  while (i > 0 && i < columnType.length) {
    const quote = columnType[i];
    if (quote !== "'" && quote !== '"') break;
    let value = '';
    i++;
    while (i < columnType.length) {
      const ch = columnType[i] as string;
      if (ch === quote && columnType[i + 1] === quote) {
        value += ch;
        i += 2;
      } else if (ch === quote) {
        i++;
        break;
      } else if (ch === '\\' && i + 1 < columnType.length) {
        value += columnType[i + 1];
        i += 2;
      } else {
        value += ch;
        i++;
      }
    }
    members.push(value);
    if (columnType[i] !== ',') break;
    i++;
  }
  return members;
}

/** An ENUM value from its 1-based index (0 is the empty error value). */
export function enumText(index: number, members: readonly string[]): string {
  return index > 0 ? (members[index - 1] ?? '') : '';
}

/** A SET value from its bit mask (little-endian bytes), members in definition order. */
export function setText(bytes: Buffer, members: readonly string[]): string {
  const chosen: string[] = [];
  for (let i = 0; i < members.length && i < bytes.length * 8; i++) {
    if (((bytes[i >> 3] as number) >> (i & 7)) & 1) chosen.push(members[i] as string);
  }
  return chosen.join(',');
}

/**
 * A double as MariaDB prints coordinates in WKT (my_gcvt): the fewest digits that read back the
 * same, in plain notation unless the decimal point is more than 15 places from the digits
 * (1e15, 1.25e-16).
 */
export function wktNumber(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  const m = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(Math.abs(x).toExponential());
  if (!m) return String(x);
  const [, lead = '', rest = '', exp = '0'] = m;
  const sign = x < 0 ? '-' : '';
  const digits = `${lead}${rest}`;
  const point = 1 + Number(exp);
  if (point > 15 || point <= -15) return `${sign}${lead}${rest ? `.${rest}` : ''}e${Number(exp)}`;
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** A spatial value (SRID then WKB) as the WKT MariaDB's ST_AsText gives. */
export function geometryText(value: Buffer): string {
  let pos = 4; // SRID
  const parse = (): string => {
    const le = value[pos] === 1;
    pos += 1;
    const u32 = (): number => {
      const v = le ? value.readUInt32LE(pos) : value.readUInt32BE(pos);
      pos += 4;
      return v;
    };
    const f64 = (): number => {
      const v = le ? value.readDoubleLE(pos) : value.readDoubleBE(pos);
      pos += 8;
      return v;
    };
    const point = (): string => {
      const x = f64();
      const y = f64();
      return `${wktNumber(x)} ${wktNumber(y)}`;
    };
    const points = (): string => Array.from({ length: u32() }, point).join(',');
    const rings = (): string => Array.from({ length: u32() }, () => `(${points()})`).join(',');
    const type = u32() % 1000;
    switch (type) {
      case 1:
        return `POINT(${point()})`;
      case 2:
        return `LINESTRING(${points()})`;
      case 3:
        return `POLYGON(${rings()})`;
      case 4:
        return `MULTIPOINT(${Array.from({ length: u32() }, () => parse().replace(/^POINT\((.*)\)$/, '$1')).join(',')})`;
      case 5:
        return `MULTILINESTRING(${Array.from({ length: u32() }, () => parse().replace(/^LINESTRING/, '')).join(',')})`;
      case 6:
        return `MULTIPOLYGON(${Array.from({ length: u32() }, () => parse().replace(/^POLYGON/, '')).join(',')})`;
      case 7: {
        const n = u32();
        return n === 0
          ? 'GEOMETRYCOLLECTION EMPTY'
          : `GEOMETRYCOLLECTION(${Array.from({ length: n }, parse).join(',')})`;
      }
      default:
        throw new Error(`unknown WKB geometry type ${type}`);
    }
  };
  return parse();
}

/**
 * MariaDB's UUID: stored with its segments reversed (nnnnnnnnnnnn-vsss-Vhhh-mmmm-llllllll)
 * when it is an RFC 4122 UUID of version 1 to 5, as is otherwise.
 */
export function uuidText(stored: Buffer): string {
  const b = Buffer.alloc(16);
  stored.copy(b, 0, 0, Math.min(16, stored.length));
  const version = (b[8] as number) >> 4;
  const swapped = version >= 1 && version <= 5 && ((b[6] as number) & 0x80) !== 0;
  const hex = swapped
    ? Buffer.concat([
        b.subarray(12, 16),
        b.subarray(10, 12),
        b.subarray(8, 10),
        b.subarray(6, 8),
        b.subarray(0, 6),
      ]).toString('hex')
    : b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function inet4Text(b: Buffer): string {
  return [b[0] ?? 0, b[1] ?? 0, b[2] ?? 0, b[3] ?? 0].join('.');
}

/** IPv6 text as inet_ntop (and MariaDB's INET6) prints it: the longest zero run as ::, embedded IPv4. */
export function inet6Text(stored: Buffer): string {
  const b = Buffer.alloc(16);
  stored.copy(b, 0, 0, Math.min(16, stored.length));
  const words = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 };
      if (cur.len > best.len) best = { ...cur };
    } else {
      cur = { base: -1, len: 0 };
    }
  }
  if (best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && words[5] === 0xffff))) {
      out += inet4Text(b.subarray(12, 16));
      break;
    }
    out += (words[i] as number).toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':';
  return out;
}

/** A JSON document as MySQL prints it: `{"a": [1, 2], "b": null}`. */
export function mysqlJsonText(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(mysqlJsonText).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${JSON.stringify(k)}: ${mysqlJsonText(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
