/** The shells kilo-fleet knows, and the startup file (relative to HOME) each one gets the managed block in. */
export const SHELL_RC_FILES = {
  bash: ".bashrc",
  zsh: ".zshrc",
  sh: ".profile",
  fish: ".config/fish/conf.d/kilo-fleet.fish",
} as const;
export type ShellName = keyof typeof SHELL_RC_FILES;
