/**
 * Pulumi mocks that deploy for real: a `newResource` that runs every `command:local:Command` the way
 * @pulumi/command 1.2.1 does (`interpreter` + script, `environment` added to the process environment,
 * `stdin` piped when non-empty, stdout/stderr captured with one trailing newline trimmed, a non-zero exit
 * fails the resource), on a temporary HOME. With the previous deployment's inputs it behaves like
 * `pulumi up` (harness/commandDiff.ts): unchanged inputs run nothing, a changed `triggers` replaces (delete
 * first: every step is deleteBeforeReplace), any other change updates (`update ?? create`).
 */
import type * as pulumi from "@pulumi/pulumi";
import { commandOp, commandScript } from "./commandDiff";
import { defaultMockState, type MockResult, unwrapSecrets } from "./pulumiMocks";
import { runScript } from "./runScript";

export interface Executed {
  name: string;
  op: "create" | "update" | "delete";
  code: number | null;
  stdout: string;
  stderr: string;
}

/** What a deployment left: each Command's (unwrapped) inputs and its state, by resource name. */
export type Deployed = Map<string, { inputs: Record<string, unknown>; state: Record<string, unknown> }>;

/** Runs local.Command operations in `cwd` with HOME and TMPDIR moved, recording every run in `executed`. */
export class LocalCommandRunner {
  /** Every operation run, in order. */
  readonly executed: Executed[] = [];

  constructor(private readonly where: { cwd: string; home: string; tmp: string }) {}

  /** The environment a local.Command's process gets here: the test's, with HOME and TMPDIR moved. */
  processEnv(extra?: Record<string, string>): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: this.where.home, TMPDIR: this.where.tmp };
    for (const k of [
      "XDG_CONFIG_HOME",
      "XDG_STATE_HOME",
      "XDG_DATA_HOME",
      "XDG_CACHE_HOME",
      "ENV",
      "BASH_ENV",
      "ZDOTDIR",
    ]) {
      delete env[k];
    }
    for (const k of Object.keys(env)) if (k.startsWith("npm_") || k.startsWith("NPM_")) delete env[k];
    return { ...env, ...extra };
  }

  /** Runs one operation as the provider does; rejects on a non-zero exit. */
  run(name: string, op: Executed["op"], inputs: Record<string, unknown>): Promise<Executed> {
    const script = commandScript(op, inputs);
    if (script === undefined) {
      // The provider calls the operation and does nothing when the step has no such script.
      const noop = { name, op, code: 0, stdout: "", stderr: "" };
      this.executed.push(noop);
      return Promise.resolve(noop);
    }
    const interpreter = (inputs.interpreter as string[] | undefined) ?? ["/bin/sh", "-c"];
    if (interpreter.length !== 2 || interpreter[1] !== "-c") throw new Error(`unexpected interpreter ${interpreter}`);
    const stdin = typeof inputs.stdin === "string" ? inputs.stdin : "";
    return runScript(script, this.processEnv(inputs.environment as Record<string, string> | undefined), {
      stdin,
      cwd: this.where.cwd,
      shell: interpreter[0],
    }).then((r) => {
      // The provider trims one trailing newline from each stream.
      const run = { name, op, code: r.code, stdout: r.stdout.replace(/\n$/, ""), stderr: r.stderr.replace(/\n$/, "") };
      this.executed.push(run);
      if (r.code !== 0) throw new Error(`${name} ${op} exited ${r.code}:\n${r.stderr}`);
      return run;
    });
  }

  /** Like `pulumi destroy`: every delete of `deployed`, in reverse order of `names`, with its stored inputs. */
  async destroy(deployed: Deployed, names: readonly string[]): Promise<void> {
    for (const name of [...names].reverse()) {
      const r = deployed.get(name);
      if (r) await this.run(name, "delete", r.inputs);
    }
  }
}

/** A mock `newResource` deploying local Commands through `runner`, like `pulumi up` after `previous`. */
export function deployingMock(
  runner: LocalCommandRunner,
  previous?: Deployed,
): {
  newResource: (args: pulumi.runtime.MockResourceArgs) => Promise<MockResult>;
  states: Deployed;
  /** Runs the deletes of resources replaced create-before-delete; call once the program has run. */
  finish: () => Promise<void>;
} {
  const states: Deployed = new Map();
  const pendingDeletes: { name: string; inputs: Record<string, unknown> }[] = [];
  const newResource = async (args: pulumi.runtime.MockResourceArgs): Promise<MockResult> => {
    if (args.type !== "command:local:Command") return defaultMockState(args);
    const inputs = unwrapSecrets(args.inputs) as Record<string, unknown>;
    const old = previous?.get(args.name);
    let op: Executed["op"] | undefined = "create";
    if (old) {
      const change = commandOp(old.inputs, inputs);
      if (change === "none") op = undefined;
      else if (change === "replace") {
        if (args.name.endsWith("-tool")) pendingDeletes.push({ name: args.name, inputs: old.inputs });
        else await runner.run(args.name, "delete", old.inputs);
        op = "create";
      } else op = "update";
    }
    const state = op ? { ...args.inputs, ...(await runner.run(args.name, op, inputs)) } : (old?.state ?? {});
    states.set(args.name, { inputs, state });
    return { id: `${args.name}-id`, state };
  };
  const finish = async () => {
    for (const d of pendingDeletes.splice(0)) await runner.run(d.name, "delete", d.inputs);
  };
  return { newResource, states, finish };
}
