import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/globalSetup.ts"],
    // Host-script tests run real shells, npm, sshd and kilo: generous timeouts, two workers (two cores).
    testTimeout: 120_000,
    hookTimeout: 300_000,
    maxWorkers: 2,
    pool: "forks",
  },
});
