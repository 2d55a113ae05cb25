/**
 * The component plugin's entry (package.json `main`): what Pulumi's plugin host runs for `pulumi package add`
 * and for programs using the generated SDKs. It serves KiloHost over gRPC; programs import index.ts instead.
 */
import { main } from "@pulumi/pulumi/provider/server";
import { KiloFleetProvider } from "./deployer/componentProvider";

void main(new KiloFleetProvider(), process.argv.slice(2));
