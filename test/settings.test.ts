import { describe, expect, it } from "vitest";
import { parseSettings } from "../components/settings";

describe("smoke", () => {
  it("parses", () => {
    expect(parseSettings({ "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1" }).ok).toBe(true);
  });
});
