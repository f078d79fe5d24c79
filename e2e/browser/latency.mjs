// Glass-to-glass latency in Debian's headless Chromium, for
// loadtest/bench/latency.sh.
//
//   node latency.mjs PAGE_URL SECONDS WARMUP
//   node latency.mjs hlsjs:PLAYLIST_URL SECONDS WARMUP [HLS_CONFIG_JSON]
//
// The first form opens a page (the edge's player page); the second opens a
// bare page with hls.js playing PLAYLIST_URL with HLS_CONFIG_JSON (default
// {}: hls.js's defaults). That page is answered by the browser itself
// (playwright's routing) at PLAYLIST_URL's own origin, so the player fetches
// the playlist same-origin as a real page would; hls.js is read from the
// edge's npm folder (edge/player/node_modules, the version the edge embeds).
//
// The publisher burns the wall clock into every frame (see
// loadtest/bench/latency.sh): a strip across the top fifteenth of the
// picture, 26 equal blocks, the first white, the last black, and between
// them the 24 low bits of the Unix time in milliseconds when ffmpeg made the
// frame, most significant first (white = 1). For every frame the browser
// presents (requestVideoFrameCallback), the page draws the strip into a
// canvas, reads the blocks back, and takes the wall clock at the frame's
// expected display time minus the time in the strip: that is glass to glass,
// whatever the stream carries (PROGRAM-DATE-TIME or not). Frames whose guard
// blocks are wrong or whose figure is out of range (0..120 s) are counted as
// unreadable, not used.
//
// Alongside, twice a second: the page's PROGRAM-DATE-TIME latency (hls.js
// playingDate; null when the playlist has none), hls.js's own latency
// estimate, stalls (waiting events after playback started), part loads.
//
// Output: one JSON line a second of progress, then one line
// {"summary": {...}} with p50/p95 of each measure over the samples taken
// after WARMUP seconds of playback.
import { launch } from "./chromium.mjs";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const [target, secondsArg, warmupArg, configArg] = process.argv.slice(2);
const seconds = Math.min(Number(secondsArg) || 60, 900);
const warmup = Math.min(Number(warmupArg) || 10, seconds);
if (!target) {
  console.error("usage: node latency.mjs PAGE_URL|hlsjs:PLAYLIST_URL SECONDS WARMUP [HLS_CONFIG_JSON]");
  process.exit(2);
}

const here = dirname(fileURLToPath(import.meta.url));
const HLS_JS = join(here, "../../edge/player/node_modules/hls.js/dist/hls.min.js");

// A bare page: hls.js with the given config, the same window.dionysia fields
// the player page publishes (those the benchmark reads).
const barePage = (playlist, config) => `<!doctype html>
<html><head><meta charset="utf-8"><title>hls.js</title></head>
<body style="margin:0;background:#000">
<video id="video" muted autoplay playsinline style="width:640px"></video>
<script src="/__dionysia_bench__/hls.min.js"></script>
<script>
"use strict";
const video = document.getElementById("video");
const state = { engine: "hls.js " + Hls.version + " (bare page)", mode: "bare", latency: null,
  hlsLatency: null, partLoads: 0, stalls: 0, restarts: 0, state: "loading" };
window.dionysia = state;
const hls = new Hls(${JSON.stringify(config)});
window.hls = hls;
hls.on(Hls.Events.FRAG_LOADED, (_e, d) => { if (d.part) state.partLoads += 1; });
hls.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) { state.restarts += 1; state.state = "fatal " + d.details; } });
hls.loadSource(${JSON.stringify(playlist)});
hls.attachMedia(video);
let started = false;
video.addEventListener("playing", () => { state.state = "playing"; started = true; });
video.addEventListener("waiting", () => { if (started && state.state === "playing") state.stalls += 1; state.state = "buffering"; });
setInterval(() => {
  const d = hls.playingDate;
  state.latency = d && !isNaN(d.getTime()) ? (Date.now() - d.getTime()) / 1000 : null;
  state.hlsLatency = hls.latency || null;
}, 500);
</script></body></html>`;

// Reads the burnt-in clock of every presented frame (see the header).
const frameClock = () => {
  const BLOCKS = 26;
  const out = { samples: [], unreadable: 0, frames: 0 };
  window.__frameClock = out;
  const canvas = document.createElement("canvas");
  canvas.width = BLOCKS * 4;
  canvas.height = 4;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const hook = () => {
    const v = document.querySelector("video");
    if (!v || !v.requestVideoFrameCallback) { setTimeout(hook, 100); return; }
    const onFrame = (_now, meta) => {
      const w = v.videoWidth, h = v.videoHeight;
      if (w && h) {
        out.frames += 1;
        // The middle half of the strip (the top fifteenth), scaled to 4 px a block.
        ctx.drawImage(v, 0, h / 60, w, h / 30, 0, 0, canvas.width, canvas.height);
        const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        const bit = (k) => px[(2 * canvas.width + 4 * k + 2) * 4] > 128 ? 1 : 0;
        let value = 0;
        for (let k = 1; k <= 24; k++) value = value * 2 + bit(k);
        const shown = Date.now() + (meta.expectedDisplayTime - performance.now());
        const ms = ((Math.round(shown) % 16777216) - value + 16777216) % 16777216;
        if (bit(0) === 1 && bit(BLOCKS - 1) === 0 && ms <= 120000) {
          if (out.samples.length < 200000) out.samples.push([Date.now(), ms / 1000]);
        } else {
          out.unreadable += 1;
        }
      }
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  };
  hook();
};

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(3));
};
const summarize = (xs) => ({ n: xs.length, p50: pct(xs, 50), p95: pct(xs, 95) });

const { context, stop } = await launch();

try {
  const page = context.pages()[0] || (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.addInitScript(frameClock);
  let url = target;
  if (target.startsWith("hlsjs:")) {
    const playlist = target.slice("hlsjs:".length);
    const origin = new URL(playlist).origin;
    const config = configArg ? JSON.parse(configArg) : {};
    url = `${origin}/__dionysia_bench__/page.html`;
    await page.route(`${origin}/__dionysia_bench__/**`, (route) => {
      if (route.request().url().endsWith("/hls.min.js")) {
        return route.fulfill({ contentType: "text/javascript", body: readFileSync(HLS_JS) });
      }
      return route.fulfill({ contentType: "text/html", body: barePage(playlist, config) });
    });
  }
  await page.goto(url, { waitUntil: "load", timeout: 15000 });
  const started = Date.now();
  let playingSince = null;
  let stallsAtWarmup = null;
  const pdt = [], hlsLat = [];
  let last = {};
  while (Date.now() - started < seconds * 1000) {
    last = await page.evaluate(() => {
      const v = document.querySelector("video");
      const d = window.dionysia || {};
      return {
        currentTime: v ? v.currentTime : null, state: d.state, mode: d.mode, engine: d.engine,
        latency: d.latency, hlsLatency: d.hlsLatency, targetLatency: d.targetLatency,
        partLoads: d.partLoads, stalls: d.stalls || 0, restarts: d.restarts || 0,
        frames: window.__frameClock ? window.__frameClock.frames : 0,
        unreadable: window.__frameClock ? window.__frameClock.unreadable : 0,
      };
    });
    const now = Date.now();
    if (playingSince === null && last.state === "playing" && last.currentTime > 0) playingSince = now;
    const measuring = playingSince !== null && now - playingSince >= warmup * 1000;
    if (measuring) {
      if (stallsAtWarmup === null) stallsAtWarmup = last.stalls;
      if (typeof last.latency === "number") pdt.push(last.latency);
      if (typeof last.hlsLatency === "number") hlsLat.push(last.hlsLatency);
    }
    if ((now - started) % 1000 < 500) console.log(JSON.stringify({ t: (now - started) / 1000, measuring, ...last }));
    await page.waitForTimeout(500);
  }
  const from = playingSince === null ? Infinity : playingSince + warmup * 1000;
  const clock = await page.evaluate(() => window.__frameClock || { samples: [], unreadable: 0, frames: 0 });
  const g2g = clock.samples.filter(([at]) => at >= from).map(([, s]) => s);
  console.log(JSON.stringify({
    summary: {
      target, engine: last.engine, mode: last.mode,
      measuredSeconds: playingSince === null ? 0 : Math.max(0, (Date.now() - from) / 1000),
      glassToGlass: summarize(g2g), pdt: summarize(pdt), hlsLatency: summarize(hlsLat),
      frames: clock.frames, unreadableFrames: clock.unreadable,
      stalls: stallsAtWarmup === null ? null : last.stalls - stallsAtWarmup,
      stallsTotal: last.stalls, restarts: last.restarts, partLoads: last.partLoads, pageErrors,
    },
  }));
  await stop(0);
} catch (e) {
  console.error(`latency.mjs: ${e.stack || e}`);
  await stop(1);
}
