/** The processes of this machine, read from /proc: for tests that prove nothing outlives a step. */
import { readdirSync, readFileSync } from "node:fs";

/** Live processes (not zombies, not this one) whose command line or environment holds `text`. */
export function processesWith(text: string): number[] {
  const found: number[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"))) continue;
      const seen = readFileSync(`/proc/${pid}/cmdline`, "utf8") + readFileSync(`/proc/${pid}/environ`, "utf8");
      if (seen.includes(text) && Number(pid) !== process.pid) found.push(Number(pid));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}
