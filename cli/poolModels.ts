/**
 * `kilo-fleet models`: turns what a pool's `/v1/models` says this API key may use into the
 * `kilo-fleet:model` / `kilo-fleet:models` settings for a stack file.
 */
import { stringify } from "yaml";
import { limitsForWindow } from "../common/contextWindow";
import { SEED_MODEL } from "../deployer/settings";
import type { PoolModel } from "../host/poolCheck";

/**
 * The largest `limit.output`: the Codex Pooler's Kilo guide's figure (and the seed's). kilo suppresses
 * `max_tokens` for GPT-5 models on OpenAI-compatible providers, so it only feeds kilo's context accounting;
 * a small window gets a quarter of itself, so some input stays usable.
 */
export const DEFAULT_OUTPUT_LIMIT = 64_000;

/** When the pool reports no `context_length`: the effective window of a 272000-token profile. */
export const FALLBACK_CONTEXT = 258_400;

/** The modalities kilo-fleet's settings accept. */
const MODALITIES = new Set(["text", "audio", "image", "video", "pdf"]);

export interface KiloModelEntry {
  name: string;
  tool_call: boolean;
  reasoning: boolean;
  temperature: boolean;
  attachment: boolean;
  modalities: { input: string[]; output: string[] };
  limit: { context: number; input: number; output: number };
}

export interface PoolModelsBlock {
  model: string;
  models: Record<string, KiloModelEntry>;
  /** Notes for stderr (a model without `context_length`). */
  warnings: string[];
}

/** A display name fit for `name`: no control characters, one line, not too long. */
function cleanName(s: string): string {
  const clean = s
    .replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g, "")
    .replace(/\s+/g, " ")
    .trim();
  return clean.length > 80 ? `${clean.slice(0, 79)}…` : clean;
}

/**
 * One kilo model entry per pool model. Limits fit the pool's window as the seed's fit 272000 (kilo's usable
 * input plus `limit.output` = the pool's `context_length`; common/contextWindow.ts): `limit.context` the
 * window, `limit.output` min(64000, a quarter of it), `limit.input` the window less output plus kilo's
 * compaction reserve. The other fields follow the seed entry (tools on, reasoning on, no temperature,
 * text+image in, text out) unless the pool reports otherwise.
 */
export function kiloModelsFromPool(poolModels: readonly PoolModel[]): PoolModelsBlock {
  const models: Record<string, KiloModelEntry> = {};
  const warnings: string[] = [];
  for (const m of poolModels) {
    const context = m.contextLength ?? FALLBACK_CONTEXT;
    if (m.contextLength === undefined) {
      warnings.push(
        `model ${m.id}: the pool reports no context_length; limits assume a 272000-token profile (${FALLBACK_CONTEXT}) — check them`,
      );
    }
    const input = m.inputModalities?.filter((x) => MODALITIES.has(x)) ?? [...SEED_MODEL.modalities.input];
    const name = m.displayName ? cleanName(m.displayName) : "";
    models[m.id] = {
      name: `${name || m.id} via Codex Pooler`,
      tool_call: m.supportsTools ?? true,
      reasoning: m.supportsReasoning ?? true,
      temperature: false,
      attachment: input.some((x) => x !== "text"),
      modalities: { input: input.length > 0 ? input : ["text"], output: ["text"] },
      limit: limitsForWindow(context, Math.min(DEFAULT_OUTPUT_LIMIT, Math.floor(context / 4))),
    };
  }
  const ids = poolModels.map((m) => m.id);
  const model = ids.includes("gpt-5.5") ? "gpt-5.5" : ids[0];
  return { model, models, warnings };
}

/** The settings as YAML lines to paste under `config:` (indented by two spaces), with a comment header. */
export function renderModelsYaml(block: PoolModelsBlock, baseUrl: string): string {
  const body = stringify(
    { "kilo-fleet:model": block.model, "kilo-fleet:models": block.models },
    { indent: 2, lineWidth: 0 },
  );
  const n = Object.keys(block.models).length;
  const header = [
    `# The ${n} model${n === 1 ? "" : "s"} this API key may use at ${baseUrl} (its /v1/models).`,
    "# limit.context: the pool's context_length; limit.output: min(64000, a quarter of it); limit.input: so that",
    "# kilo's usable input (limit.input less its compaction reserve) plus limit.output is exactly the window.",
    "# Paste under `config:` in stacks/Pulumi.<stack>.yaml (kilo-fleet:model: pick the default model).",
  ];
  const lines = body.trimEnd().split("\n");
  return `${[...header, ...lines.map((l) => `  ${l}`)].join("\n")}\n`;
}

/** The same settings as JSON, keyed like the stack file. */
export function renderModelsJson(block: PoolModelsBlock): string {
  return `${JSON.stringify({ "kilo-fleet:model": block.model, "kilo-fleet:models": block.models }, null, 2)}\n`;
}
