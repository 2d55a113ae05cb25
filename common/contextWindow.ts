/**
 * kilo's own context arithmetic (7.7.7, read from its bundled source): when it compacts, and so how many
 * tokens one turn may reach. Pure; used by validate, `kilo-fleet models` and the smoke check's warning.
 */

/** A model's `limit` block as kilo.jsonc writes it. */
export interface ModelLimit {
  context: number;
  input?: number;
  output: number;
}

/** The `compaction` settings kilo reads: `reserved` tokens, and `threshold_percent` (absent or null: off). */
export interface CompactionSettings {
  reserved?: number;
  thresholdPercent?: number | null;
}

/** kilo's cap on output tokens when `KILO_EXPERIMENTAL_OUTPUT_TOKEN_MAX` is unset. */
export const KILO_OUTPUT_TOKEN_MAX = 32000;

/** kilo's default compaction reserve (its `COMPACTION_BUFFER`). */
export const KILO_COMPACTION_BUFFER = 20000;

/** kilo's `maxOutputTokens`: `limit.output` capped at 32000. */
export function maxOutputTokens(limit: ModelLimit): number {
  return Math.min(limit.output, KILO_OUTPUT_TOKEN_MAX) || KILO_OUTPUT_TOKEN_MAX;
}

/** The reserve kilo keeps below `limit.input`: `compaction.reserved`, else min(20000, maxOutputTokens). */
export function compactionReserve(limit: ModelLimit, compaction: CompactionSettings = {}): number {
  return compaction.reserved ?? Math.min(KILO_COMPACTION_BUFFER, maxOutputTokens(limit));
}

/** Input tokens at which kilo compacts: usable input, lowered by `threshold_percent` of `limit.context`. */
export function usableInput(limit: ModelLimit, compaction: CompactionSettings = {}): number {
  if (limit.context === 0) return 0;
  const usable = limit.input
    ? Math.max(0, limit.input - compactionReserve(limit, compaction))
    : Math.max(0, limit.context - maxOutputTokens(limit));
  const pct = compaction.thresholdPercent;
  if (typeof pct !== "number") return usable;
  return Math.min(usable, Math.floor(limit.context * (pct / 100)));
}

/** The most tokens one turn may reach: usable input plus `limit.output` (kilo sends no max_tokens to GPT-5). */
export function tokensNeeded(limit: ModelLimit, compaction: CompactionSettings = {}): number {
  return usableInput(limit, compaction) + limit.output;
}

/**
 * Limits that fit a window of `window` tokens the way the seed's fit 272000 (usable + output = context):
 * `context` the window, `output` as asked (at most the window), `input` the window less output plus the reserve.
 */
export function limitsForWindow(
  window: number,
  output: number,
  compaction: Pick<CompactionSettings, "reserved"> = {},
): Required<ModelLimit> {
  const out = Math.min(output, window);
  const reserve = compactionReserve({ context: window, output: out }, compaction);
  return { context: window, input: Math.min(window, window - out + reserve), output: out };
}
