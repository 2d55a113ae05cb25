/**
 * The benchmark's arithmetic, pure: summaries of repeated timings, the least-squares line through
 * (host count, seconds), and how far per-host cost drifts between fleet sizes.
 */

export interface Summary {
  n: number;
  min: number;
  median: number;
  max: number;
}

/** The middle value (the mean of the two middle ones for an even count). Throws on no samples. */
export function median(samples: readonly number[]): number {
  if (samples.length === 0) throw new Error("median of no samples");
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** min/median/max of the samples. Throws on no samples or a non-finite sample. */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error("summary of no samples");
  if (samples.some((x) => !Number.isFinite(x))) throw new Error(`non-finite sample in ${samples.join(", ")}`);
  return { n: samples.length, min: Math.min(...samples), median: median(samples), max: Math.max(...samples) };
}

export interface LinearFit {
  /** Seconds per host. */
  slope: number;
  /** Seconds at zero hosts (the fixed cost: module loading, stack setup). */
  intercept: number;
  /** Coefficient of determination, 1 for points exactly on the line. */
  r2: number;
}

/** Ordinary least squares `y = slope * x + intercept`. Needs at least two distinct x values. */
export function leastSquares(points: readonly { x: number; y: number }[]): LinearFit {
  const n = points.length;
  if (n < 2) throw new Error("a line needs at least two points");
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const p of points) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
    syy += (p.y - my) ** 2;
  }
  if (sxx === 0) throw new Error("a line needs at least two distinct x values");
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  const r2 = syy === 0 ? 1 : (sxy * sxy) / (sxx * syy);
  return { slope, intercept, r2 };
}

/** Below this ratio of per-host costs (large fleet / smaller fleet), growth is called linear. */
export const LINEAR_RATIO_LIMIT = 1.25;

export interface Growth {
  /** The two fleet sizes compared (the largest two). */
  from: number;
  to: number;
  /** Per-host cost at `to` divided by per-host cost at `from` (medians). 1 = perfectly linear. */
  perHostRatio: number;
  /**
   * Marginal cost ratio: seconds per *added* host between the two largest sizes over the same between
   * the next two; immune to the fixed cost that inflates small fleets' per-host figures.
   */
  marginalRatio: number | undefined;
  linear: boolean;
}

/**
 * How per-host cost grows with fleet size, from the medians by host count. Linear when the per-host
 * cost of the largest fleet is at most LINEAR_RATIO_LIMIT times that of the next largest.
 */
export function growth(medianSecondsByHosts: ReadonlyMap<number, number>): Growth {
  const sizes = [...medianSecondsByHosts.keys()].sort((a, b) => a - b);
  if (sizes.length < 2) throw new Error("growth needs at least two fleet sizes");
  const at = (h: number) => medianSecondsByHosts.get(h) as number;
  const to = sizes[sizes.length - 1];
  const from = sizes[sizes.length - 2];
  const perHostRatio = at(to) / to / (at(from) / from);
  let marginalRatio: number | undefined;
  if (sizes.length >= 3) {
    const before = sizes[sizes.length - 3];
    const upper = (at(to) - at(from)) / (to - from);
    const lower = (at(from) - at(before)) / (from - before);
    marginalRatio = lower > 0 ? upper / lower : undefined;
  }
  return { from, to, perHostRatio, marginalRatio, linear: perHostRatio <= LINEAR_RATIO_LIMIT };
}
