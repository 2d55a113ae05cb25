/**
 * The kilo-fleet Pulumi program: read and validate the `kilo-fleet:` config (every error at once,
 * before any resource exists), then one KiloHost per host. All logic lives in deployer/fleet.ts.
 */
import { deployFleet, readStackConfig } from "./deployer/fleet";

const { rawConfig, secrets } = readStackConfig();
const fleet = deployFleet(rawConfig, secrets);

/** Per host: kind, kiloVersion, configPath, envFilePath, smoke. No secrets. */
export const hosts = fleet.outputs;
