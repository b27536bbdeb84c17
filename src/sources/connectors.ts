/**
 * The connectors DIP knows: one line per connector. Its folder `sources/<type>/` holds the rest:
 * `spec.ts` (config schema, description, example, declared tables, disjoint slices), read here;
 * `index.ts` (the factory, whose default export `openSource` imports only when a run opens a
 * source of that type). The dip.yaml source union, the JSON Schema and the README's table of
 * source types are built from this list; the task graph, project checks, stream lookup and the
 * orchestrator ask a connector's spec, never its type.
 *
 * Connectors outside DIP (a test's toy, later plugins) join at run time through
 * `registerConnector` in sources/open.ts, which adds their spec here.
 */
import { filesSpec } from './files/spec.js';
import { gatewaySpec } from './gateway/spec.js';
import { jetstreamSpec } from './jetstream/spec.js';
import { kafkaSpec } from './kafka/spec.js';
import { mysqlSpec } from './mysql/spec.js';
import { postgresSpec } from './postgres/spec.js';
import { restSpec } from './rest/spec.js';
import type { ConnectorSpec, Declared } from './spec.js';

export const CONNECTORS = [
  filesSpec,
  restSpec,
  postgresSpec,
  mysqlSpec,
  gatewaySpec,
  kafkaSpec,
  jetstreamSpec,
] as const;

const registered: ConnectorSpec[] = [];

/** Every connector: DIP's own, then those registered at run time. */
export function connectorSpecs(): readonly ConnectorSpec[] {
  return [...(CONNECTORS as readonly ConnectorSpec[]), ...registered];
}

/** Adds a connector's spec (sources/open.ts `registerConnector` pairs it with its factory). */
export function addConnectorSpec(spec: ConnectorSpec): void {
  if (connectorSpecs().some((c) => c.type === spec.type))
    throw new Error(`a connector of type "${spec.type}" is already registered`);
  registered.push(spec);
}

/** The number of connectors registered at run time (the project schema is rebuilt when it changes). */
export function registeredCount(): number {
  return registered.length;
}

/** The spec of a source's type; a source config has passed the schema, so its type is known. */
export function connectorSpec(type: string): ConnectorSpec {
  const spec = connectorSpecs().find((c) => c.type === type);
  if (!spec)
    throw new Error(
      `no connector of type "${type}" (known: ${connectorSpecs()
        .map((c) => c.type)
        .join(', ')})`,
    );
  return spec;
}

/** The streams and bronze tables a source's config declares. */
export function declaredBy(source: { type: string }): Declared {
  return connectorSpec(source.type).declared(source);
}

/** Whether runs of a source for different intervals may ingest at once (see ConnectorSpec). */
export function sourceReadsDisjointSlices(source: { type: string }): boolean {
  return connectorSpec(source.type).readsDisjointSlices(source);
}
