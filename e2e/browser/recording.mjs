// Drives a recording from the dashboard to the player page in Debian's
// headless Chromium, and prints one JSON line per step for the Rust side
// (e2e/tests/recording.rs), which publishes meanwhile.
//
//   node recording.mjs DASHBOARD_URL ADMIN_TOKEN STREAM SECONDS
//
// Steps: sign in; turn on Record for STREAM ({"step":"record-on"}); open its
// Recordings panel until it lists one (the test publishes and ends the
// stream meanwhile; {"step":"listed","play","vod"}); follow the Play link to
// the edge's player page and wait until it plays ({"step":"playing",
// "duration"}); seek to the middle and wait until playback moves on from there
// ({"step":"seeked"}); wait for the end ({"step":"ended"}). Every wait is
// bounded; the whole run by SECONDS.
import { launch } from "./chromium.mjs";

const [url, adminToken, stream, secondsArg] = process.argv.slice(2);
const seconds = Math.min(Number(secondsArg) || 120, 600);
if (!url || !adminToken || !stream) {
  console.error("usage: node recording.mjs DASHBOARD_URL ADMIN_TOKEN STREAM SECONDS");
  process.exit(2);
}
const say = (o) => console.log(JSON.stringify(o));

const { context, stop } = await launch();
const overall = setTimeout(() => { console.error("recording.mjs: out of time"); stop(1); }, seconds * 1000);

try {
  const page = context.pages()[0] || (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(url, { waitUntil: "load", timeout: 15000 });
  await page.fill("#token", adminToken);
  await page.click("#signin-button");
  await page.waitForSelector("#app:not([hidden])", { timeout: 10000 });
  const row = page.locator(`tr[data-stream="${stream}"]`);
  await row.waitFor({ timeout: 10000 });

  // Record on.
  await row.locator("button.record").click();
  await page.waitForSelector(`tr[data-stream="${stream}"][data-record="on"]`, { timeout: 10000 });
  say({ step: "record-on" });

  // The Recordings panel, opened again every two seconds until it lists one.
  let play = null;
  let vod = null;
  while (!play) {
    await page.locator(`tr[data-stream="${stream}"] button.recordings`).click();
    await page.waitForSelector("#recordings:not([hidden])", { timeout: 10000 });
    const link = page.locator("#recordings-list li.recording a.play").first();
    if (await link.count()) {
      play = await link.getAttribute("href");
      vod = await page.locator("#recordings-list li.recording a.vod").first().getAttribute("href");
      break;
    }
    await page.click("#recordings-close");
    await page.waitForTimeout(2000); // the poll interval, not a readiness wait
  }
  say({ step: "listed", play, vod });

  // The player page, as the link opens it.
  await page.goto(play, { waitUntil: "load", timeout: 15000 });
  const sample = () => page.evaluate(() => {
    const v = document.getElementById("video");
    const d = window.dionysia || {};
    return { state: d.state, engine: d.engine, vod: d.vod, currentTime: v.currentTime, duration: v.duration,
      ended: v.ended, paused: v.paused, title: document.getElementById("title").textContent };
  });
  await page.waitForFunction(() => {
    const v = document.getElementById("video");
    return window.dionysia && window.dionysia.state === "playing" && Number.isFinite(v.duration) && v.currentTime > 0.5;
  }, null, { timeout: 30000, polling: 250 });
  const playing = await sample();
  say({ step: "playing", ...playing });

  // Seek to the middle; playback must go on from there.
  const middle = playing.duration / 2;
  await page.evaluate((t) => { document.getElementById("video").currentTime = t; }, middle);
  await page.waitForFunction((t) => {
    const v = document.getElementById("video");
    return !v.seeking && v.currentTime >= t + 1 && v.currentTime < t + 8 && !v.paused;
  }, middle, { timeout: 20000, polling: 250 });
  const seeked = await sample();
  say({ step: "seeked", middle, ...seeked });

  // To the end.
  await page.waitForFunction(() => document.getElementById("video").ended, null,
    { timeout: (playing.duration - middle + 20) * 1000, polling: 250 });
  say({ step: "ended", ...(await sample()), pageErrors });
  clearTimeout(overall);
  await stop(0);
} catch (e) {
  console.error(`recording.mjs: ${e && e.stack ? e.stack : e}`);
  await stop(1);
}
