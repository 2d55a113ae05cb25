/** `npm run docs`: rewrites the README's generated config reference from the settings schema. */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spliceConfigReference } from "../components/configReference";

const readmePath = join(__dirname, "..", "README.md");
const before = readFileSync(readmePath, "utf8");
const after = spliceConfigReference(before);
if (after !== before) writeFileSync(readmePath, after);
process.stdout.write(
  after === before ? "README.md: config reference already current\n" : "README.md: config reference rewritten\n",
);
