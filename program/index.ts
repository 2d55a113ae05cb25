/**
 * The repo's own Pulumi program (Pulumi.yaml's `main`): one KiloHost per host of the `kilo-fleet:` stack
 * config, every error reported before any resource exists. The logic is in deployer/fleet.ts.
 */
import { deployFleet, readStackConfig } from "../deployer/fleet";

const { rawConfig, secrets } = readStackConfig();
const fleet = deployFleet(rawConfig, secrets);

/** Per host: kind, wave, kiloVersion, configPath, envFilePath, smoke, and kiloConfig where it differs. No secrets. */
export const hosts = fleet.outputs;
/** The managed kilo.jsonc keys most hosts share. */
export const kiloConfig = fleet.kiloConfig;
