/** Runs once before the suite: installs the real kilo CLI into the test cache so every test finds it. */
import { ensureKilo } from "../harness/kilo";

export default function setup(): void {
  const started = Date.now();
  const kilo = ensureKilo();
  process.stdout.write(`[kilo-fleet tests] kilo ${kilo.version} at ${kilo.bin} (${Date.now() - started} ms)\n`);
}
