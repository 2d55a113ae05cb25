/**
 * kilo-fleet's public API: the `KiloHost` component and its argument types, the stack-config fleet entry
 * for programs that want it, and the step result types. Importing it creates no resource.
 * (The repo's own Pulumi program is program/index.ts.)
 */
export type { ConfigResult, EnvResult, InstallResult, SmokeResult } from "./common/result";
export {
  deployFleet,
  type Fleet,
  type FleetSecrets,
  type HostExports,
  readStackConfig,
} from "./deployer/fleet";
export type { KiloConfig } from "./deployer/kiloConfig";
export {
  KiloHost,
  type KiloHostArgs,
  type KiloHostSmokeCheckArgs,
  type KiloHostSshArgs,
  type SmokeOutput,
} from "./deployer/kiloHost";
export { type KiloLock, readLockFile } from "./deployer/kiloLock";
