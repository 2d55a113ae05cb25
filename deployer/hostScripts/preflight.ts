/** The preflight step: node >= 18 and npm must be on the host (found even off the non-interactive PATH). */
import type { ResolvedHost, Settings } from "../settings";
import type { HostScript } from "./index";
import { prelude, script } from "./prelude";

/** Prints `kilo-fleet: node <v> at <path>, npm <v> at <path> on <host>`; fails with one line otherwise. */
export function preflightScript(_settings: Settings, host: ResolvedHost): HostScript {
  return {
    create: script(
      prelude(host.name),
      "kf_require_node",
      'kf_npm_version=$("$KF_NPM" --version 2>/dev/null </dev/null) || kf_die "node >= 18 and npm are required on $kf_host: $KF_NPM does not run"',
      `printf 'kilo-fleet: node %s at %s, npm %s at %s on %s\\n' "$kf_node_version" "$KF_NODE" "$kf_npm_version" "$KF_NPM" "$kf_host"`,
    ),
  };
}
