// Copies the front-end packages the portal serves from node_modules into assets/build/vendor,
// where Django's staticfiles (and WhiteNoise) pick them up. Nothing is fetched at run time.
import { cpSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "assets", "build", "vendor");
const files = {
  "htmx.org/dist/htmx.min.js": "htmx.min.js",
  "chart.js/dist/chart.umd.min.js": "chart.umd.min.js",
  // The minified file names its source map; production's collectstatic fails without it.
  "chart.js/dist/chart.umd.min.js.map": "chart.umd.min.js.map",
};
mkdirSync(out, { recursive: true });
for (const [from, to] of Object.entries(files)) {
  cpSync(join(root, "node_modules", from), join(out, to));
}
console.log(`assets: ${Object.keys(files).length} files in ${out}`);
