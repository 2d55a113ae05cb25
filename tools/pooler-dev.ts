/**
 * `npm run pooler:dev`: the stand-in Codex Pooler (harness/fakePooler.ts) on 127.0.0.1:4000, so the
 * dev stack (poolerBaseUrl http://localhost:4000/v1) can be deployed and smoke-checked on one machine.
 * It is a stand-in, not a pooler: it serves no model and only scripts the smoke check's conversation.
 *
 * Environment:
 *   POOLER_DEV_API_KEY  the key it accepts (comma-separated for several); falls back to
 *                       CODEX_POOLER_API_KEY, so a shell that already exports the dev key just works.
 *   POOLER_DEV_PORT     port (default 4000)
 *   POOLER_DEV_MODE     ok (default) | 401 | 500 | slow | close | no-tool
 *   POOLER_DEV_SLOW_MS  delay of slow mode in ms (default 60000)
 *
 * It logs one line per request and never prints a key.
 */
import { FAKE_POOLER_MODES, type FakePoolerMode, startFakePooler } from "../harness/fakePooler";

function fail(message: string): never {
  process.stderr.write(`pooler:dev: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const keyText = process.env.POOLER_DEV_API_KEY || process.env.CODEX_POOLER_API_KEY || "";
  const keys = keyText
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k !== "");
  if (keys.length === 0) {
    fail("set POOLER_DEV_API_KEY (or CODEX_POOLER_API_KEY) to the key the stand-in should accept");
  }
  const port = Number(process.env.POOLER_DEV_PORT ?? "4000");
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail("POOLER_DEV_PORT must be a port number");
  const mode = (process.env.POOLER_DEV_MODE ?? "ok") as FakePoolerMode;
  if (!FAKE_POOLER_MODES.includes(mode)) fail(`POOLER_DEV_MODE must be one of ${FAKE_POOLER_MODES.join(", ")}`);
  const slowMs = process.env.POOLER_DEV_SLOW_MS ? Number(process.env.POOLER_DEV_SLOW_MS) : undefined;

  const pooler = await startFakePooler({
    port,
    keys,
    mode,
    slowMs,
    onRequest: (r) => {
      const what = r.reply === "tool_call" ? `tool_call ${r.toolCall?.name}` : r.reply;
      process.stdout.write(
        `${new Date().toISOString()} ${r.method} ${r.path} -> ${r.status || "-"} ${what}${r.body?.model ? ` model=${r.body.model}` : ""}\n`,
      );
    },
  }).catch((e: Error) => fail(`cannot listen on 127.0.0.1:${port}: ${e.message}`));
  process.stdout.write(
    `kilo-fleet stand-in pooler (NOT a real pooler) at ${pooler.url}, mode ${mode}, accepting ${keys.length} key(s)\n`,
  );
  const stop = () => {
    void pooler.stop().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

void main();
