// A developer VM made by another stack (its `publicIp` and `hostKey` outputs), provisioned with kilo by KiloHost.
import * as pulumi from "@pulumi/pulumi";
import { KiloHost } from "kilo-fleet";

const cfg = new pulumi.Config();
const vms = new pulumi.StackReference(cfg.require("vmStack"));

const dev = new KiloHost("dev-vm", {
  poolerBaseUrl: cfg.require("poolerBaseUrl"),
  apiKey: cfg.requireSecret("codexPoolerApiKey"),
  ssh: {
    host: vms.requireOutput("publicIp") as pulumi.Output<string>,
    user: "dev",
    hostKey: vms.requireOutput("hostKey") as pulumi.Output<string>,
  },
  sshPrivateKey: cfg.requireSecret("sshPrivateKey"),
  smokeCheck: { level: "pool" },
});

export const kiloVersion = dev.kiloVersion;
export const configPath = dev.configPath;
