/** A policy as an organisation would set it, for the policy tests (no key: the apiKey is a reference). */
export const TEST_POLICY = {
  provider: {
    "codex-pooler": { options: { baseURL: "http://127.0.0.1:9/v1", apiKey: "{env:CODEX_POOLER_API_KEY}" } },
  },
  enabled_providers: ["codex-pooler"],
  model: "codex-pooler/gpt-5.5",
  small_model: "codex-pooler/gpt-5.5-mini",
  permission: { bash: "deny", edit: "ask" },
  share: "disabled",
};
