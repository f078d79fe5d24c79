// Drives the router API's dashboard in Debian's headless Chromium, the way an
// operator would, and prints one JSON line per step for the Rust side
// (e2e/tests/dashboard.rs), which publishes and reports viewers meanwhile.
//
//   node dashboard.mjs URL ADMIN_TOKEN SCREENSHOT SECONDS
//
// Steps: sign in; create `spare`, rotate its key, delete it; create `golive`
// ({"step":"created","key"} is printed: the test publishes with it); wait
// until it shows live with 3 viewers and its thumbnail; set the token
// policy and mint a playback URL; screenshot; disable it and wait until it shows disabled
// with no origin. Every wait is bounded; the whole run by SECONDS.
import { launch } from "./chromium.mjs";

const [url, adminToken, screenshot, secondsArg] = process.argv.slice(2);
const seconds = Math.min(Number(secondsArg) || 120, 600);
if (!url || !adminToken) {
  console.error("usage: node dashboard.mjs URL ADMIN_TOKEN SCREENSHOT SECONDS");
  process.exit(2);
}
const say = (o) => console.log(JSON.stringify(o));

const { context, stop } = await launch({ viewport: { width: 1280, height: 900 } });
const overall = setTimeout(() => { console.error("dashboard.mjs: out of time"); stop(1); }, seconds * 1000);

try {
  const page = context.pages()[0] || (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  // Resource errors are expected (the wrong token's 401); script errors are not.
  page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(m.text()); });
  page.on("dialog", (d) => d.accept());
  await page.goto(url, { waitUntil: "load", timeout: 15000 });

  const rowOf = (name) => page.locator(`tr[data-stream="${name}"]`);
  const text = async (sel) => (await page.locator(sel).textContent()).trim();

  // Sign in: a wrong token is refused, the right one opens the app.
  await page.fill("#token", "wrong-token-0123456789");
  await page.click("#signin-button");
  await page.waitForFunction(() => document.getElementById("signin-error").textContent.length > 0, null, { timeout: 10000 });
  await page.fill("#token", adminToken);
  await page.click("#signin-button");
  await page.waitForSelector("#app:not([hidden])", { timeout: 10000 });
  const stored = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: Object.keys(localStorage) }));
  say({ step: "signed-in", stored });

  // A spare stream: create, rotate (a new key shown), delete.
  await page.fill("#new-name", "spare");
  await page.click("#create");
  await page.waitForSelector("#secret:not([hidden])", { timeout: 10000 });
  const spareKey = await text("#secret-key");
  await page.click("#secret-close");
  await rowOf("spare").locator("button.rotate").click();
  await page.waitForFunction((old) => {
    const k = document.getElementById("secret-key").textContent;
    return !document.getElementById("secret").hidden && k && k !== old;
  }, spareKey, { timeout: 10000 });
  const rotatedKey = await text("#secret-key");
  await page.click("#secret-close");
  await rowOf("spare").locator("button.delete").click();
  await rowOf("spare").waitFor({ state: "detached", timeout: 10000 });
  say({ step: "spare", spareKey, rotatedKey });

  // The stream the test publishes.
  await page.fill("#new-name", "golive");
  await page.click("#create");
  await page.waitForSelector("#secret:not([hidden])", { timeout: 10000 });
  say({ step: "created", key: await text("#secret-key"), server: await text("#secret-server") });
  await page.click("#secret-close");

  await page.waitForSelector('tr[data-stream="golive"][data-state="live"]', { timeout: 60000 });
  await page.waitForFunction(() => {
    const v = document.querySelector('tr[data-stream="golive"] td.viewers');
    return v && v.textContent === "3";
  }, null, { timeout: 30000 });
  // The live thumbnail, through the edge (the page's CSP lets it in).
  await page.waitForFunction(() => {
    const img = document.querySelector('tr[data-stream="golive"] img.thumb');
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 30000 });
  const live = rowOf("golive");
  say({
    step: "live",
    thumbnail: await live.locator("img.thumb").evaluate((img) => [img.naturalWidth, img.naturalHeight]),
    origins: await live.locator("td.origins").textContent(),
    renditions: await live.locator("td.renditions").textContent(),
    viewers: await live.locator("td.viewers").textContent(),
  });

  await live.locator("select.playback").selectOption("token");
  // The table is not redrawn under an open select: leave it.
  await page.locator("body").click({ position: { x: 5, y: 5 } });
  await page.waitForFunction(() => {
    const s = document.querySelector('tr[data-stream="golive"] select.playback');
    return s && s.value === "token";
  }, null, { timeout: 10000 });
  await rowOf("golive").locator("button.mint").click();
  await page.waitForSelector("#minted:not([hidden])", { timeout: 10000 });
  say({ step: "minted", url: await text("#minted-url") });
  await rowOf("golive").locator("button.preview").click();
  await page.waitForSelector("#preview:not([hidden])", { timeout: 10000 });
  say({ step: "preview", src: await page.locator("#preview-frame").getAttribute("src") });
  // Best effort, for the screenshot: let the preview start playing.
  const player = page.frames().find((f) => f.url().includes("/watch/golive"));
  if (player) {
    await player.waitForFunction(() => {
      const v = document.getElementById("video");
      return v && v.currentTime > 1;
    }, null, { timeout: 20000 }).catch(() => {});
  }
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

  await rowOf("golive").locator("button.toggle").click();
  await page.waitForFunction(() => {
    const r = document.querySelector('tr[data-stream="golive"]');
    return r && r.dataset.state === "disabled" && r.querySelector("td.origins").textContent === "";
  }, null, { timeout: 20000 });
  say({ step: "disabled" });
  say({ step: "done", pageErrors });
  clearTimeout(overall);
  await stop(0);
} catch (e) {
  console.error(`dashboard.mjs: ${e.stack || e}`);
  await stop(1);
}
