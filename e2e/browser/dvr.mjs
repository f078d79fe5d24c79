// Drives the player page's DVR controls in Debian's headless Chromium, as a
// viewer would, and prints what the page shows, one JSON line every half
// second, for a bounded time.
//
//   node dvr.mjs URL SECONDS MIN_WINDOW
//
// Phases (the "phase" field of each line):
//   "live"    playing at the live edge, until the page shows a DVR window
//             of at least MIN_WINDOW seconds, then 5 s more;
//   "dvr"     the seek bar moved to 5 s after its start (input + change
//             events, what dragging it fires), for 15 s;
//   "golive"  the "Go live" button clicked, for 15 s.
// Then it exits 0; a page that never shows the seek bar runs out of SECONDS
// in "live". Each line also carries currentTime, latency, behind, dvrWindow,
// seekStart/seekEnd (the seek bar's range), dvrVisible, state, stalls,
// restarts, errors and pageErrors. Chromium is started like watch.mjs does.
import { launch } from "./chromium.mjs";

const [url, secondsArg, minWindowArg] = process.argv.slice(2);
const seconds = Math.min(Number(secondsArg) || 60, 600);
const minWindow = Number(minWindowArg) || 50;
if (!url) {
  console.error("usage: node dvr.mjs URL SECONDS MIN_WINDOW");
  process.exit(2);
}

const { context, stop } = await launch();

try {
  const page = context.pages()[0] || (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(url, { waitUntil: "load", timeout: 15000 });
  const started = Date.now();
  let phase = "live";
  let phaseAt = null;
  while (Date.now() - started < seconds * 1000) {
    const sample = await page.evaluate(() => {
      const v = document.getElementById("video");
      const seek = document.getElementById("seek");
      const d = window.dionysia || {};
      return {
        currentTime: v.currentTime, paused: v.paused, state: d.state, latency: d.latency,
        behind: d.behind, dvrWindow: d.dvrWindow, mode: d.mode, stalls: d.stalls,
        restarts: d.restarts, errors: (d.errors || []).map((e) => e.reason),
        dvrVisible: !document.getElementById("dvr").hidden,
        seekStart: Number(seek.min), seekEnd: Number(seek.max),
      };
    });
    const t = (Date.now() - started) / 1000;
    console.log(JSON.stringify({ ...sample, t, phase, pageErrors }));
    if (phase === "live" && phaseAt === null && sample.state === "playing" && sample.dvrVisible
        && sample.dvrWindow >= minWindow) {
      phaseAt = t;
    }
    if (phase === "live" && phaseAt !== null && t - phaseAt >= 5) {
      // Drag the seek bar back to the start of the window (plus a margin).
      await page.evaluate(() => {
        const seek = document.getElementById("seek");
        seek.value = String(Number(seek.min) + 5);
        seek.dispatchEvent(new Event("input", { bubbles: true }));
        seek.dispatchEvent(new Event("change", { bubbles: true }));
      });
      phase = "dvr";
      phaseAt = t;
    } else if (phase === "dvr" && t - phaseAt >= 15) {
      await page.click("#golive");
      phase = "golive";
      phaseAt = t;
    } else if (phase === "golive" && t - phaseAt >= 15) {
      await stop(0);
    }
    await page.waitForTimeout(500);
  }
  await stop(0);
} catch (e) {
  console.error(`dvr.mjs: ${e.stack || e}`);
  await stop(1);
}
