/**
 * Opens a configured source, importing only its connector's implementation: a project of files
 * never loads the PostgreSQL, MySQL or HTTP client libraries (start-up time of every `dip`
 * command that runs pipelines). A connector of DIP is found by its folder, `./<type>/index.js`
 * (default export); one registered at run time brings its own loader.
 */
import type { SourceConfig } from '../config/schema.js';
import { addConnectorSpec, connectorSpec } from './connectors.js';
import type { ConnectorSpec } from './spec.js';
import type { Connector, SourceInstance } from './types.js';

const loaders = new Map<string, () => Promise<Connector>>();

/**
 * Adds a connector from outside DIP's source tree (a test's toy, a plugin): its spec joins the
 * list (dip.yaml accepts its `type`, the task graph and checks ask it), and `load` imports its
 * implementation the first time a run opens a source of that type.
 */
export function registerConnector<S extends ConnectorSpec>(spec: S, load: () => Promise<Connector<S>>): void {
  addConnectorSpec(spec);
  loaders.set(spec.type, load as () => Promise<Connector>);
}

async function loadConnector(type: string): Promise<Connector> {
  const spec = connectorSpec(type); // throws for a type no connector has
  const load = loaders.get(spec.type);
  if (load) return load();
  return ((await import(`./${spec.type}/index.js`)) as { default: Connector }).default;
}

export async function openSource(config: SourceConfig, baseDir: string, sourceName: string): Promise<SourceInstance> {
  const connector = await loadConnector(config.type);
  return connector.create(config, { baseDir, sourceName });
}
