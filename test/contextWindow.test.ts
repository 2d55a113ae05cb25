import { describe, expect, it } from "vitest";
import {
  compactionReserve,
  limitsForWindow,
  maxOutputTokens,
  tokensNeeded,
  usableInput,
} from "../common/contextWindow";
import { SEED_MODEL } from "../deployer/settings";

describe("kilo's context arithmetic", () => {
  const seed = SEED_MODEL.limit;

  it("the seed's limits: 208000 usable, plus 64000 output, is exactly its 272000 context", () => {
    expect(compactionReserve(seed)).toBe(20000);
    expect(usableInput(seed)).toBe(208000);
    expect(tokensNeeded(seed)).toBe(272000);
  });

  it("compaction.reserved replaces the 20000 reserve", () => {
    expect(usableInput(seed, { reserved: 50000 })).toBe(178000);
  });

  it("the reserve is at most the output cap (kilo's maxOutputTokens is limit.output capped at 32000)", () => {
    expect(maxOutputTokens({ context: 100000, output: 64000 })).toBe(32000);
    expect(maxOutputTokens({ context: 100000, output: 8000 })).toBe(8000);
    expect(compactionReserve({ context: 100000, input: 90000, output: 8000 })).toBe(8000);
  });

  it("without limit.input: context less the capped output", () => {
    expect(usableInput({ context: 272000, output: 64000 })).toBe(240000);
    expect(usableInput({ context: 272000, output: 16000 })).toBe(256000);
  });

  it("a threshold compacts earlier, never later", () => {
    expect(usableInput(seed, { thresholdPercent: 75 })).toBe(204000);
    expect(usableInput(seed, { thresholdPercent: 90 })).toBe(208000);
    expect(usableInput(seed, { thresholdPercent: null })).toBe(208000);
  });

  it("input = context_length overflows a pool's window when no threshold is set", () => {
    const naive = { context: 258400, input: 258400, output: 64000 };
    expect(tokensNeeded(naive)).toBe(302400);
    expect(tokensNeeded(naive)).toBeGreaterThan(258400);
  });

  it("limitsForWindow fits the window exactly as the seed's do, with and without a threshold", () => {
    expect(limitsForWindow(272000, 64000)).toEqual(seed);
    const pool = limitsForWindow(258400, 64000);
    expect(pool).toEqual({ context: 258400, input: 214400, output: 64000 });
    expect(tokensNeeded(pool)).toBe(258400);
    expect(tokensNeeded(pool, { thresholdPercent: 75 })).toBeLessThanOrEqual(258400);
    expect(tokensNeeded(limitsForWindow(258400, 64000, { reserved: 30000 }), { reserved: 30000 })).toBe(258400);
  });

  it("a small window: output clamped to it, input never above context", () => {
    const small = limitsForWindow(16000, 64000);
    expect(small.output).toBe(16000);
    expect(small.input).toBeLessThanOrEqual(small.context);
    expect(tokensNeeded(small)).toBe(16000);
  });
});
