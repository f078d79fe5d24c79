// Opens a Dionysia player page in Debian's headless Chromium and prints what
// the page shows, one JSON line every half second, for a bounded time.
//
//   node watch.mjs URL SECONDS
//
// Each line: {"t": seconds since start, "currentTime", "paused", "readyState",
// "state", "rendition", "ladder", "latency", "hlsLatency", "targetLatency",
// "mode", "partLoads", "partList", "stalls", "session", "restarts", "errors",
// "engine", "live", "pageErrors"}. The Rust side (e2e/src/lib.rs) reads them.
// Chromium is started with a fresh profile and the flags this machine needs
// (no background networking: the network is closed), and always closed.
import { launch } from "./chromium.mjs";

const [url, secondsArg] = process.argv.slice(2);
const seconds = Math.min(Number(secondsArg) || 30, 600);
if (!url) {
  console.error("usage: node watch.mjs URL SECONDS");
  process.exit(2);
}

const { context, stop } = await launch();

try {
  const page = context.pages()[0] || (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(url, { waitUntil: "load", timeout: 15000 });
  const started = Date.now();
  while (Date.now() - started < seconds * 1000) {
    const sample = await page.evaluate(() => {
      const v = document.getElementById("video");
      const d = window.dionysia || {};
      return {
        currentTime: v ? v.currentTime : null,
        paused: v ? v.paused : null,
        readyState: v ? v.readyState : null,
        state: d.state, rendition: d.rendition, ladder: d.ladder, latency: d.latency,
        hlsLatency: d.hlsLatency, targetLatency: d.targetLatency, mode: d.mode,
        partLoads: d.partLoads, partList: d.partList, stalls: d.stalls,
        session: d.session, restarts: d.restarts, errors: (d.errors || []).map((e) => e.reason),
        engine: d.engine, live: d.live,
      };
    });
    sample.t = (Date.now() - started) / 1000;
    sample.pageErrors = pageErrors;
    console.log(JSON.stringify(sample));
    await page.waitForTimeout(500);
  }
  await stop(0);
} catch (e) {
  console.error(`watch.mjs: ${e.stack || e}`);
  await stop(1);
}
