// Opens a load-test report (a local HTML file) in Debian's headless Chromium
// and prints one JSON line: what the browser complained about and what it
// drew. Optionally saves a full-page screenshot.
//
//   node render.mjs FILE.html [SCREENSHOT.png]
//
// Output: {"consoleErrors": [...], "pageErrors": [...], "requests": [URLs the
// page asked for besides itself], "svgs": n, "drawn": svgs with a non-empty
// box, "title": document title}. playwright-core is the one e2e/browser
// installs (npm ci in scripts/setup.sh); Chromium gets a fresh profile and is
// always closed.
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../../../e2e/browser/package.json"));
const { chromium } = require("playwright-core");

const [file, screenshot] = process.argv.slice(2);
if (!file) {
  console.error("usage: node render.mjs FILE.html [SCREENSHOT.png]");
  process.exit(2);
}
const url = pathToFileURL(resolve(file)).href;
const profile = mkdtempSync(join(tmpdir(), "dionysia-report-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1000, height: 800 },
  args: [
    "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let code = 0;
try {
  const page = context.pages()[0] || (await context.newPage());
  const consoleErrors = [];
  const pageErrors = [];
  const requests = [];
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("request", (r) => { if (r.url() !== url) requests.push(r.url()); });
  await page.goto(url, { waitUntil: "load", timeout: 15000 });
  const drawn = await page.evaluate(() => {
    const svgs = [...document.querySelectorAll("svg")];
    return {
      svgs: svgs.length,
      drawn: svgs.filter((s) => { const b = s.getBBox(); return b.width > 0 && b.height > 0; }).length,
      title: document.title,
    };
  });
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ consoleErrors, pageErrors, requests, ...drawn }));
} catch (e) {
  console.error(`render.mjs: ${e.stack || e}`);
  code = 1;
}
await context.close().catch(() => {});
rmSync(profile, { recursive: true, force: true });
process.exit(code);
