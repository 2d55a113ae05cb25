/**
 * Reads a Pulumi stack file the way `pulumi up` would hand it to the program, without the Pulumi engine:
 * the stack's `config:` map plus the defaults declared in Pulumi.yaml, every value turned into the
 * string the Pulumi runtime passes (structured values as JSON text). `secure:` values are never
 * decrypted: they become a placeholder, so nothing secret can reach the output.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isMap, isScalar, type Node, parseDocument } from "yaml";
import { ENCRYPTED, SECRET_KEYS, SECRET_MAP_KEYS, type SettingsError } from "../deployer/settings";

/** What the CLI needs of Pulumi.yaml. */
export interface Project {
  name: string;
  /** Absolute directory of the stack files. */
  stackConfigDir: string;
  /** Values applied when a stack does not set the key, by full key (`kilo-fleet:model`). */
  defaults: Record<string, string>;
  /** Declared keys of the project's namespace with neither default nor value: Pulumi requires them. */
  required: string[];
}

/** A stack file's config as the program would receive it. */
export interface StackConfig {
  raw: Record<string, string>;
  /** Problems with the file itself (not the settings): unnamespaced keys, plaintext secrets. */
  errors: SettingsError[];
  /** Full keys the stack file sets. */
  setKeys: Set<string>;
}

/** A YAML syntax error, with where it is. */
export class StackFileError extends Error {}

function readYaml(path: string): unknown {
  const doc = parseDocument(readFileSync(path, "utf8"));
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const at = e.linePos ? `:${e.linePos[0].line}:${e.linePos[0].col}` : "";
    throw new StackFileError(`${path}${at}: ${e.message.split("\n")[0]}`);
  }
  return doc;
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** `{secure: "v1:..."}`, Pulumi's encrypted value. */
const isSecure = (v: unknown) => isRecord(v) && Object.keys(v).length === 1 && typeof v.secure === "string";

/** Replaces every `{secure: ...}` inside a structured value with the placeholder. */
function hideSecrets(v: unknown): unknown {
  if (isSecure(v)) return ENCRYPTED;
  if (Array.isArray(v)) return v.map(hideSecrets);
  if (isRecord(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, hideSecrets(x)]));
  return v;
}

/**
 * A YAML value as the Pulumi runtime passes it: a scalar as its text (a YAML null as ""), a structure
 * as JSON text.
 */
function runtimeString(node: unknown): string {
  if (isScalar(node)) {
    if (node.value === null || node.value === undefined) return "";
    if (typeof node.value === "string") return node.value;
    return node.source ?? String(node.value);
  }
  return JSON.stringify(hideSecrets((node as Node).toJSON()));
}

/** A Pulumi.yaml default (decoded YAML) as the runtime passes it. */
function defaultString(v: unknown): string {
  return typeof v === "object" && v !== null ? JSON.stringify(hideSecrets(v)) : String(v);
}

const SCHEMA_FIELDS = ["type", "default", "value", "secret", "description", "items"];

/** Reads Pulumi.yaml in `projectDir`. */
export function loadProject(projectDir: string): Project {
  const doc = readYaml(join(projectDir, "Pulumi.yaml")) as ReturnType<typeof parseDocument>;
  const project = doc.toJSON() as Record<string, unknown>;
  const name = String(project.name);
  const defaults: Record<string, string> = {};
  const required: string[] = [];
  const config = isRecord(project.config) ? project.config : {};
  for (const [key, decl] of Object.entries(config)) {
    const fullKey = key.includes(":") ? key : `${name}:${key}`;
    const typed = isRecord(decl) && Object.keys(decl).some((k) => SCHEMA_FIELDS.includes(k));
    if (!typed) {
      defaults[fullKey] = defaultString(decl);
      continue;
    }
    // Pulumi applies `default` over `value` when the stack does not set the key.
    const value = decl.default ?? decl.value;
    if (value !== undefined && value !== null) defaults[fullKey] = defaultString(value);
    else if (fullKey.startsWith(`${name}:`)) required.push(fullKey);
  }
  const dir = typeof project.stackConfigDir === "string" ? project.stackConfigDir : ".";
  return { name, stackConfigDir: join(projectDir, dir), defaults, required };
}

/** The stack file at `path`, with the project's defaults applied. Throws StackFileError on bad YAML. */
export function readStackConfig(path: string, project: Project): StackConfig {
  const doc = readYaml(path) as ReturnType<typeof parseDocument>;
  const errors: SettingsError[] = [];
  const raw: Record<string, string> = {};
  const setKeys = new Set<string>();
  const config = isMap(doc.contents) ? doc.contents.get("config", true) : undefined;
  if (config !== undefined && config !== null && !isMap(config)) {
    errors.push({ key: "config", message: "must be a map of namespace:key to value" });
  }
  for (const pair of isMap(config) ? config.items : []) {
    const key = String(isScalar(pair.key) ? pair.key.value : pair.key);
    if (!key.includes(":")) {
      errors.push({ key, message: `stack config keys must be namespaced (write "${project.name}:${key}")` });
      continue;
    }
    setKeys.add(key);
    const value = pair.value;
    const plain = (value as Node | null)?.toJSON?.() ?? null;
    const [ns, name] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
    const secretMap = ns === project.name && (SECRET_MAP_KEYS as readonly string[]).includes(name);
    if (isSecure(plain)) {
      if (secretMap) {
        errors.push({
          key,
          message: `is encrypted as one value, so which hosts it covers cannot be checked; set one entry per host instead: pulumi config set --secret --path '${name}.<host>' <key>`,
        });
      }
      raw[key] = ENCRYPTED;
      continue;
    }
    if (secretMap && isRecord(plain)) {
      // Names are structure (checked against hosts); every value must be encrypted, and none is kept.
      const masked: Record<string, unknown> = {};
      for (const [entry, v] of Object.entries(plain)) {
        if (!isSecure(v) && typeof v === "string") {
          const path = /^[A-Za-z0-9_-]+$/.test(entry) ? `${name}.${entry}` : `${name}[${JSON.stringify(entry)}]`;
          errors.push({
            key: `${project.name}:${path}`,
            message: `is stored in plain text in the stack file; set it with: pulumi config set --secret --path '${path}' …`,
          });
          masked[entry] = ENCRYPTED;
        } else masked[entry] = isSecure(v) ? ENCRYPTED : v;
      }
      raw[key] = JSON.stringify(masked);
      continue;
    }
    if (ns === project.name && (SECRET_KEYS as readonly string[]).includes(name)) {
      errors.push({
        key,
        message: `is stored in plain text in the stack file; set it with: pulumi config set --secret ${name} …`,
      });
      raw[key] = ENCRYPTED; // Past this point nothing may hold, let alone print, the plaintext.
      continue;
    }
    raw[key] = runtimeString(value);
  }
  for (const [key, value] of Object.entries(project.defaults)) if (!setKeys.has(key)) raw[key] = value;
  return { raw, errors, setKeys };
}
