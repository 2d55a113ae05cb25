/**
 * The component plugin's provider: Pulumi's source-based ComponentProvider for KiloHost (its schema inferred
 * from `KiloHostArgs`), with what inference cannot see added to the schema: which inputs are secrets, and the
 * settings schema's defaults.
 */
import * as path from "node:path";
import { ComponentProvider } from "@pulumi/pulumi/provider/experimental";
import { KiloHost } from "./kiloHost";
import { ARG_INTERFACES, REQUIRED, settingDefault } from "./settingsDocs";

/** KiloHost's inputs that hold secrets (`Input<string>`, passed as Pulumi secrets). */
export const SECRET_INPUTS = ["apiKey", "sshPrivateKey", "npmToken", "proxyCredentials", "sshJumpPrivateKey"] as const;

/** The package's root (package.json, tsconfig.json, index.ts): above deployer/, from sources or from dist/. */
export const PACKAGE_ROOT = ((): string => {
  const above = path.join(__dirname, "..");
  return path.basename(above) === "dist" ? path.dirname(above) : above;
})();

interface PropertySpec {
  $ref?: string;
  secret?: boolean;
  default?: unknown;
  description?: string;
}
interface SchemaSpec {
  name: string;
  resources: Record<string, { inputProperties: Record<string, PropertySpec> }>;
  types: Record<string, { properties?: Record<string, PropertySpec> }>;
}

/** Sets each property's `default` from the settings schema, where it is a plain value; `prefix` is its path. */
function addDefaults(properties: Record<string, PropertySpec>, prefix: string): void {
  for (const [key, prop] of Object.entries(properties)) {
    const value = settingDefault(`${prefix}${key}`);
    if (value !== REQUIRED && ["string", "number", "boolean"].includes(typeof value)) prop.default = value;
  }
}

/**
 * The inferred `schema` with what inference cannot see: the secret inputs marked, and the settings schema's
 * defaults on KiloHost's inputs and on the fields of its argument types. In place; returns it.
 */
export function decorateSchema(schema: SchemaSpec): SchemaSpec {
  const inputs = schema.resources[`${schema.name}:index:KiloHost`]?.inputProperties;
  if (!inputs) throw new Error("kilo-fleet: the inferred schema has no KiloHost");
  for (const key of SECRET_INPUTS) {
    if (!inputs[key]) throw new Error(`kilo-fleet: the inferred schema has no KiloHost input ${key}`);
    inputs[key].secret = true;
  }
  addDefaults(inputs, "");
  for (const [name, prefix] of Object.entries(ARG_INTERFACES)) {
    const type = schema.types[`${schema.name}:index:${name}`];
    if (type?.properties) addDefaults(type.properties, prefix);
  }
  return schema;
}

/** The provider the plugin serves: KiloHost, named after the package (`kilo-fleet`). */
export class KiloFleetProvider extends ComponentProvider {
  constructor(root = PACKAGE_ROOT) {
    super({ dirname: root, name: "kilo-fleet", components: [KiloHost] });
  }

  override async getSchema(): Promise<string> {
    return JSON.stringify(decorateSchema(JSON.parse(await super.getSchema()) as SchemaSpec));
  }
}
