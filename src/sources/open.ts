/**
 * Opens a configured source, importing only its connector's implementation: a project of files
 * never loads the PostgreSQL, MySQL or HTTP client libraries (start-up time of every `dip`
 * command that runs pipelines). A connector of DIP is found by its folder, `./<type>/index.js`
 * (default export); one registered at run time brings its own loader.
 */
import type { SharedBudgets } from '../catalog/budgets/types.js';
import type { SourceConfig } from '../config/schema.js';
import { addConnectorSpec, connectorSpec } from './connectors.js';
import type { ConnectorSpec } from './spec.js';
import type { Connector, SourceInstance } from './types.js';

/** What a connector's implementation module exports: the connector, as its default export. */
export interface ConnectorModule<S extends ConnectorSpec = ConnectorSpec> {
  default: Connector<S>;
}

const loaders = new Map<string, () => Promise<ConnectorModule>>();

/**
 * Adds a connector from outside DIP's source tree (a test's toy, a plugin): its spec joins the
 * list (dip.yaml accepts its `type`, the task graph and checks ask it), and `load` imports its
 * implementation module (default export: the connector, as DIP's own) the first time a run opens
 * a source of that type, e.g. `registerConnector(toySpec, () => import('./toy/index.js'))`.
 */
export function registerConnector<S extends ConnectorSpec>(spec: S, load: () => Promise<ConnectorModule<S>>): void {
  addConnectorSpec(spec);
  loaders.set(spec.type, load as unknown as () => Promise<ConnectorModule>);
}

async function loadConnector(type: string): Promise<Connector> {
  const spec = connectorSpec(type); // throws for a type no connector has
  const load = loaders.get(spec.type);
  const module = load ? await load() : ((await import(`./${spec.type}/index.js`)) as ConnectorModule);
  if (module.default?.spec !== spec)
    throw new Error(`the implementation loaded for connector "${spec.type}" does not export it as default`);
  return module.default;
}

export async function openSource(
  config: SourceConfig,
  baseDir: string,
  sourceName: string,
  budgets?: SharedBudgets,
): Promise<SourceInstance> {
  const connector = await loadConnector(config.type);
  return connector.create(config, { baseDir, sourceName, budgets });
}
