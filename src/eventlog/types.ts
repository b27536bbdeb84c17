/**
 * The event log contract: what sits between receiving pushed events (the gateway) and landing
 * them (the lander). An append resolves only once its events are durable (on disk, fsynced;
 * for JetStream: stored by the server), so a 2xx can promise the event. Offsets increase by one
 * per event, from `bounds().start` to `bounds().end - 1`. Events carrying an id are stored once
 * per id within the log's dedup window: a second append of that id resolves to the first one's
 * offset with `duplicate: true`. Readers see durable events only, in offset order, and
 * acknowledge what they landed per consumer name, which drives retention and backpressure.
 *
 * Implementations: `embedded.ts` (segment files in a directory, the default) and
 * `jetstream.ts` (a NATS JetStream stream). `test/event-log.contract.test.ts` runs one suite
 * against both.
 */

export interface AppendEvent {
  /** The event's own bytes (a JSON text for the gateway). */
  data: Uint8Array;
  /** Idempotency id: an event whose id the log already holds is not stored again. */
  id?: string | undefined;
  /** Small string attributes kept with the event (e.g. a quarantine reason). */
  headers?: Readonly<Record<string, string>> | undefined;
}

export interface AppendResult {
  offset: number;
  /** The id was already in the log: this is the offset of the event stored first. */
  duplicate: boolean;
}

export interface LogEvent {
  offset: number;
  /** When the log stored the event, in ms since the epoch. */
  timestamp: number;
  id: string | undefined;
  headers: Record<string, string> | undefined;
  data: Uint8Array;
}

export interface ReadLimits {
  /** At most this many events (default 1000). */
  maxEvents?: number;
  /** Stop after the event that reaches this many data bytes (default 8 MiB). */
  maxBytes?: number;
}

export interface LogBounds {
  /** The oldest offset still held (retention moves it up). */
  start: number;
  /** The offset the next event gets: every durable event is below it. */
  end: number;
}

export interface EventLog {
  /** Appends durably, in order; resolves (one result per event) once every event is stored. */
  append(events: readonly AppendEvent[]): Promise<AppendResult[]>;
  /** Durable events from offset `from` (inclusive), in order; empty when none is there yet. */
  read(from: number, limits?: ReadLimits): Promise<LogEvent[]>;
  /**
   * Resolves when an event at or past `from` is readable, or after `timeoutMs`, or when
   * `signal` aborts (never rejects for those).
   */
  waitFor(from: number, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  bounds(): Promise<LogBounds>;
  /** Records that `consumer` landed everything below `next`. */
  ack(consumer: string, next: number): Promise<void>;
  /** What `consumer` acknowledged last (the next offset it needs), if anything. */
  acked(consumer: string): Promise<number | undefined>;
  /** Events appended that the slowest consumer has not acknowledged (all held, with no consumer). */
  backlog(): Promise<number>;
  /** Retention: drops whole segments past the size or age limits that every consumer has acknowledged. */
  enforceRetention(): Promise<void>;
  close(): Promise<void>;
}

export interface RetentionLimits {
  /** Keep the log below this many bytes (whole segments are dropped, oldest first). */
  maxBytes?: number | undefined;
  /** Drop segments whose newest event is older than this (ms). */
  maxAgeMs?: number | undefined;
}
