/**
 * What `pulumi up` runs for a @pulumi/command 1.2.1 Command (local or remote) whose inputs went from the
 * previous deployment's to this one's: the one model of it, shared by the deploying mocks and the bench.
 *
 * From pulumi-command v1.2.1's source (github.com/pulumi/pulumi-command):
 * - provider/pkg/provider/common/inputs.go: `triggers` is the only input tagged `replaceOnChanges`; the SDK
 *   also registers every Command with `replaceOnChanges: ["triggers[*]"]` (node_modules/@pulumi/command/
 *   local/command.js). The Command has no custom Diff, so pulumi-go-provider's default (v1.3.0,
 *   infer/resource.go `diff`) compares old and new inputs: any difference is a change, a change of
 *   `triggers` as a whole is a replace, and the engine makes a change inside it (`triggers[i]`) one too.
 * - provider/pkg/provider/local/commandController.go and remote/commandController.go: `Create` runs `create`;
 *   `Update` runs `update`, or `create` when there is no `update`; `Delete` runs `delete`. A command that is
 *   absent runs nothing.
 */
import { isDeepStrictEqual } from "node:util";

/** What a Command does on `pulumi up`: nothing, a replace (delete + create) or an in-place update. */
export type CommandOp = "none" | "replace" | "update";

/** The inputs a change of which replaces a Command (pulumi-command 1.2.1, common/inputs.go). */
export const REPLACE_ON_CHANGES = ["triggers"] as const;

/** The operation `pulumi up` performs when a Command's (unwrapped) inputs went from `old` to `now`. */
export function commandOp(old: Record<string, unknown>, now: Record<string, unknown>): CommandOp {
  if (isDeepStrictEqual(old, now)) return "none";
  return REPLACE_ON_CHANGES.some((k) => !isDeepStrictEqual(old[k], now[k])) ? "replace" : "update";
}

/** The script an operation runs (`update` falls back to `create`), or undefined: the operation runs nothing. */
export function commandScript(op: "create" | "update" | "delete", inputs: Record<string, unknown>): string | undefined {
  const script = inputs[op] ?? (op === "update" ? inputs.create : undefined);
  return typeof script === "string" ? script : undefined;
}
