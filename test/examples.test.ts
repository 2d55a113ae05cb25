/**
 * examples/: the Python and YAML programs cannot run here (no Pulumi CLI, no PyPI), so they are checked
 * against the committed schema (schema.json, kept equal to the plugin's by test/componentPlugin.test.ts):
 * the resource type, every input's name and type, enum values, and the required inputs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const ROOT = join(__dirname, "..");
const EXAMPLES = join(ROOT, "examples");

interface PropertySpec {
  type?: string;
  $ref?: string;
  items?: PropertySpec;
  additionalProperties?: PropertySpec;
}
interface TypeSpec {
  type: string;
  properties?: Record<string, PropertySpec>;
  required?: string[];
  enum?: { value: string }[];
}
interface Schema {
  name: string;
  resources: Record<
    string,
    {
      inputProperties: Record<string, PropertySpec>;
      requiredInputs?: string[];
      properties: Record<string, PropertySpec>;
    }
  >;
  types: Record<string, TypeSpec>;
}

const schema = JSON.parse(readFileSync(join(ROOT, "schema.json"), "utf8")) as Schema;
const KILO_HOST = `${schema.name}:index:KiloHost`;

const typeOf = (ref: string): [string, TypeSpec] => {
  const token = ref.replace("#/types/", "");
  const t = schema.types[token];
  if (!t) throw new Error(`no type ${token} in schema.json`);
  return [token, t];
};

/** Problems of `value` (a parsed YAML value) as the input `spec`, at `path`. */
function yamlProblems(value: unknown, spec: PropertySpec, path: string): string[] {
  if (typeof value === "string" && /^\$\{[^}]+\}$/.test(value)) return []; // an interpolation: typed by its source
  if (spec.$ref) {
    if (spec.$ref.startsWith("pulumi.json#/Any")) return [];
    const [token, t] = typeOf(spec.$ref);
    if (t.enum) {
      return t.enum.some((e) => e.value === value) ? [] : [`${path}: ${JSON.stringify(value)} is not a ${token} value`];
    }
    return objectProblems(value, t.properties ?? {}, t.required ?? [], path);
  }
  switch (spec.type) {
    case "string":
    case "boolean":
      return typeof value === spec.type ? [] : [`${path}: must be a ${spec.type}`];
    case "number":
    case "integer":
      return typeof value === "number" ? [] : [`${path}: must be a number`];
    case "array":
      return Array.isArray(value)
        ? value.flatMap((v, i) => yamlProblems(v, spec.items as PropertySpec, `${path}[${i}]`))
        : [`${path}: must be a list`];
    case "object":
      return value !== null && typeof value === "object" && !Array.isArray(value)
        ? Object.entries(value).flatMap(([k, v]) =>
            yamlProblems(v, spec.additionalProperties as PropertySpec, `${path}.${k}`),
          )
        : [`${path}: must be a map`];
    default:
      throw new Error(`${path}: schema type ${JSON.stringify(spec)} not handled by this check`);
  }
}

function objectProblems(value: unknown, props: Record<string, PropertySpec>, required: string[], path: string) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [`${path}: must be a map`];
  const v = value as Record<string, unknown>;
  return [
    ...required.filter((k) => !(k in v)).map((k) => `${path}.${k}: required`),
    ...Object.entries(v).flatMap(([k, x]) =>
      props[k] ? yamlProblems(x, props[k], `${path}.${k}`) : [`${path}.${k}: not an input`],
    ),
  ];
}

const camel = (snake: string) => snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Keyword arguments of the first `<callee>(` call in `source` (top-level commas only). */
function keywordArgs(source: string, callee: string): Record<string, string> {
  const start = source.indexOf(`${callee}(`);
  if (start < 0) throw new Error(`no ${callee}( call`);
  let depth = 0;
  let i = start + callee.length;
  const parts: string[] = [];
  let part = "";
  for (; i < source.length; i++) {
    const c = source[i];
    if (c === "(" || c === "[" || c === "{") depth++;
    if (c === ")" || c === "]" || c === "}") depth--;
    if (depth === 0) break;
    if (depth === 1 && c === ",") {
      parts.push(part);
      part = "";
    } else if (!(depth === 1 && c === "(" && part === "")) part += c;
  }
  parts.push(part);
  return Object.fromEntries(
    parts
      .map((p) => p.trim())
      .filter((p) => /^[a-z_]+\s*=/.test(p))
      .map((p) => [p.slice(0, p.indexOf("=")).trim(), p.slice(p.indexOf("=") + 1).trim()]),
  );
}

/** Problems of the Python keyword arguments `args` as `props`/`required`, nested `…Args(` calls followed. */
function pythonProblems(
  args: Record<string, string>,
  props: Record<string, PropertySpec>,
  required: string[],
  path: string,
): string[] {
  const given = Object.fromEntries(Object.entries(args).map(([k, v]) => [camel(k), v]));
  const out = required.filter((k) => !(k in given)).map((k) => `${path}.${k}: required`);
  for (const [k, text] of Object.entries(given)) {
    const spec = props[k];
    if (!spec) {
      out.push(`${path}.${k}: not an input`);
      continue;
    }
    if (spec.$ref && !spec.$ref.startsWith("pulumi.json")) {
      const [token, t] = typeOf(spec.$ref);
      const name = token.split(":").pop() as string;
      if (t.enum) {
        const member = text.match(new RegExp(`\\.${name}\\.([A-Z_]+)$`))?.[1];
        const values = t.enum.map((e) => e.value.toUpperCase().replace(/[^A-Z0-9]/g, "_"));
        if (!member || !values.includes(member)) out.push(`${path}.${k}: not a ${name} member (${text})`);
        continue;
      }
      const call = text.match(new RegExp(`\\.(${name}Args)\\(`))?.[1];
      if (!call) {
        out.push(`${path}.${k}: must be ${name}Args(...) (${text})`);
        continue;
      }
      out.push(...pythonProblems(keywordArgs(text, call), t.properties ?? {}, t.required ?? [], `${path}.${k}`));
      continue;
    }
    const literal = /^-?\d+(\.\d+)?$/.test(text)
      ? "number"
      : /^(True|False)$/.test(text)
        ? "boolean"
        : /^"/.test(text)
          ? "string"
          : undefined;
    if (literal && literal !== (spec.type === "integer" ? "number" : spec.type))
      out.push(`${path}.${k}: must be a ${spec.type}`);
  }
  return out;
}

describe("examples against the component's schema", () => {
  const kiloHost = schema.resources[KILO_HOST];

  it("the schema has KiloHost with its required inputs", () => {
    expect(kiloHost).toBeDefined();
    expect(kiloHost.requiredInputs?.sort()).toEqual(["apiKey", "poolerBaseUrl"]);
  });

  it("the YAML program's outputs are KiloHost's", () => {
    const program = parse(readFileSync(join(EXAMPLES, "yaml", "Pulumi.yaml"), "utf8")) as {
      outputs: Record<string, string>;
    };
    for (const ref of Object.values(program.outputs)) {
      expect(Object.keys(kiloHost.properties)).toContain(ref.match(/^\$\{\w+\.(\w+)\}$/)?.[1]);
    }
  });

  it("the YAML program's KiloHost uses the resource type, input names, types and enum values of the schema", () => {
    const program = parse(readFileSync(join(EXAMPLES, "yaml", "Pulumi.yaml"), "utf8")) as {
      packages: Record<string, string>;
      resources: Record<string, { type: string; properties: Record<string, unknown> }>;
    };
    expect(Object.keys(program.packages)).toEqual([schema.name]);
    const hosts = Object.entries(program.resources).filter(([, r]) => r.type.startsWith(`${schema.name}:`));
    expect(hosts.length).toBeGreaterThan(0);
    for (const [name, r] of hosts) {
      expect([`${schema.name}:KiloHost`, KILO_HOST]).toContain(r.type);
      expect(objectProblems(r.properties, kiloHost.inputProperties, kiloHost.requiredInputs ?? [], name)).toEqual([]);
    }
  });

  it("the Python program's KiloHost uses the SDK's input names, argument classes, enums and required inputs", () => {
    const source = readFileSync(join(EXAMPLES, "python", "__main__.py"), "utf8");
    expect(source).toMatch(/^import pulumi_kilo_fleet as kilo_fleet$/m);
    const args = keywordArgs(source, "kilo_fleet.KiloHost");
    expect(Object.keys(args).length).toBeGreaterThan(2);
    expect(pythonProblems(args, kiloHost.inputProperties, kiloHost.requiredInputs ?? [], "KiloHost")).toEqual([]);
    const outputs = [...source.matchAll(/(?<![\w-])laptop\.([a-z_]+)/g)].map((m) => camel(m[1]));
    expect(outputs.length).toBeGreaterThan(0);
    for (const o of outputs) expect(Object.keys(kiloHost.properties)).toContain(o);
  });

  it("the checks catch what they are for: a wrong name, a wrong type, a bad enum value, a missing input", () => {
    const props = kiloHost.inputProperties;
    const req = kiloHost.requiredInputs ?? [];
    expect(objectProblems({ poolerBaseUrl: "u", apiKey: "k", sshPort: 22 }, props, req, "h")).toEqual([
      "h.sshPort: not an input",
    ]);
    expect(
      objectProblems({ poolerBaseUrl: "u", apiKey: "k", ssh: { host: "x", user: "y", port: "22" } }, props, req, "h"),
    ).toEqual(["h.ssh.port: must be a number"]);
    expect(
      objectProblems({ poolerBaseUrl: "u", apiKey: "k", smokeCheck: { level: "full" } }, props, req, "h")[0],
    ).toMatch(/h\.smokeCheck\.level: "full" is not a .*SmokeCheckLevel value/);
    expect(objectProblems({ apiKey: "k" }, props, req, "h")).toEqual(["h.poolerBaseUrl: required"]);
    const py = 'kilo_fleet.KiloHost("x", api_key=k, ssh=kilo_fleet.SshHostArgs(host="h", usr="u"))';
    expect(pythonProblems(keywordArgs(py, "kilo_fleet.KiloHost"), props, req, "K")).toEqual([
      "K.poolerBaseUrl: required",
      "K.ssh.user: required",
      "K.ssh.usr: not an input",
    ]);
  });
});
