// Validate Amazon States Language documents with AWS's own validator (amazon-states-language-service,
// the library behind the AWS Toolkit's and Workflow Studio's diagnostics).
// Usage: node validate.mjs FILE... ; prints one JSON line per file: {"file", "diagnostics": [...]},
// and exits 1 when any file has a diagnostic.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { getLanguageService, TextDocument } = require("amazon-states-language-service");

const service = getLanguageService({});
let failed = false;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "utf8");
  const document = TextDocument.create(`file://${file}`, "asl", 0, text);
  const diagnostics = await service.doValidation(document, service.parseJSONDocument(document));
  const found = diagnostics.map((d) => ({
    line: d.range.start.line + 1,
    column: d.range.start.character + 1,
    severity: d.severity,
    message: d.message,
  }));
  if (found.length) failed = true;
  console.log(JSON.stringify({ file, diagnostics: found }));
}
process.exit(failed ? 1 : 0);
