// Dionysia's player page. One page for two addresses:
//   /watch/           the streams live now (from the router, through the edge)
//   /watch/{stream}   plays /{stream}/index.m3u8 from this edge, and shows
//                     the rendition playing, the ladder and the live latency.
//
// Playback uses hls.js where Media Source Extensions exist, native HLS
// otherwise. A publish session is a timeline of its own (new segment names,
// new numbering, new timestamps): when the edge moves this viewer to another
// session (a 302 on a media playlist after the publisher moved or an origin
// died), the page starts the stream afresh at the live edge instead of
// trying to splice two timelines. Fatal errors and long stalls do the same,
// with a growing delay, so a viewer left open recovers by itself.
//
// window.dionysia holds what the page shows, for tests and for debugging.
"use strict";

(function () {
  const STREAM_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
  const STALL_RESTART_MS = 10000;
  const state = {
    stream: null,
    engine: null,
    state: "idle",
    rendition: null,
    ladder: [],
    latency: null,
    session: null,
    restarts: 0,
    errors: [],
    live: [],
  };
  window.dionysia = state;

  const $ = (id) => document.getElementById(id);
  const show = (id, text) => { $(id).textContent = text; };
  const setState = (s) => { state.state = s; show("state", s); };
  const describe = (l) => (l.height ? `${l.height}p` : "audio") + ` ${Math.round(l.bitrate / 1000)} kb/s`;

  // The stream named in the path, if any.
  const m = location.pathname.match(/^\/watch\/([^/]+)\/?$/);
  if (m && STREAM_NAME.test(m[1])) state.stream = m[1];

  // ---- live list -------------------------------------------------------
  async function refreshLive() {
    try {
      const resp = await fetch("/watch/streams.json", { cache: "no-store" });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const body = await resp.json();
      state.live = body.streams.map((s) => s.name);
      const ul = $("live");
      ul.replaceChildren();
      for (const s of body.streams) {
        const li = document.createElement("li");
        if (s.name === state.stream) li.className = "current";
        const a = document.createElement("a");
        a.href = `/watch/${s.name}`;
        a.textContent = s.name;
        li.append(a, ` (${s.renditions.join(", ")})`);
        ul.append(li);
      }
      if (!body.streams.length) {
        const li = document.createElement("li");
        li.className = "empty";
        li.textContent = "nothing is live";
        ul.append(li);
      }
    } catch (e) {
      // The list is a convenience; playback does not depend on it.
    }
  }
  refreshLive();
  setInterval(refreshLive, 5000);

  if (!state.stream) return;

  // ---- playback ----------------------------------------------------------
  $("player").hidden = false;
  show("title", state.stream);
  document.title = `${state.stream} - Dionysia`;
  const video = $("video");
  const src = `/${state.stream}/index.m3u8`;
  let hls = null;
  let restartTimer = null;
  let retryDelay = 1000;

  // The publish session in a media playlist URL: /{stream}/{session}/{rendition}/index.m3u8
  const sessionOf = (url) => {
    const parts = new URL(url, location.href).pathname.split("/");
    return parts.length >= 5 ? parts[2] : null;
  };

  function start() {
    restartTimer = null;
    if (hls) { hls.destroy(); hls = null; }
    state.session = null;
    setState("loading");
    if (window.Hls && Hls.isSupported()) {
      state.engine = `hls.js ${Hls.version}`;
      hls = new Hls({
        liveSyncDurationCount: 3,
        // Media playlists change every segment: retry them briefly, then
        // let the page start afresh (see the header).
        playlistLoadPolicy: { default: {
          maxTimeToFirstByteMs: 5000, maxLoadTimeMs: 10000,
          timeoutRetry: { maxNumRetry: 2, retryDelayMs: 500, maxRetryDelayMs: 2000 },
          errorRetry: { maxNumRetry: 3, retryDelayMs: 500, maxRetryDelayMs: 2000 },
        } },
      });
      hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
        state.ladder = data.levels.map(describe);
        show("ladder", state.ladder.join(", "));
        video.play().catch(() => {});
      });
      hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
        const level = hls.levels[data.level];
        if (level) { state.rendition = describe(level); show("rendition", state.rendition); }
      });
      hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => {
        const nd = data.networkDetails;
        const url = (nd && (nd.responseURL || nd.url)) || data.details.url;
        const session = sessionOf(url);
        if (!session) return;
        if (state.session && session !== state.session) {
          restart(`stream moved to session ${session}`, 0);
          return;
        }
        state.session = session;
      });
      hls.on(Hls.Events.ERROR, (_e, data) => {
        if (!data.fatal) return;
        restart(`${data.type}: ${data.details}`);
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      state.engine = "native HLS";
      video.src = src;
      video.play().catch(() => {});
    } else {
      state.engine = "none";
      setState("this browser cannot play HLS");
    }
    show("engine", state.engine);
  }

  function restart(reason, delay) {
    state.errors.push({ at: Date.now(), reason });
    if (state.errors.length > 50) state.errors.shift();
    if (restartTimer) return;
    state.restarts += 1;
    setState(`reconnecting (${reason})`);
    const wait = delay === undefined ? retryDelay : delay;
    retryDelay = Math.min(retryDelay * 2, 8000);
    restartTimer = setTimeout(start, wait);
  }

  video.addEventListener("playing", () => { setState("playing"); retryDelay = 1000; });
  video.addEventListener("waiting", () => setState("buffering"));

  // Live latency: the wall clock minus the PROGRAM-DATE-TIME of the frame on
  // screen. A stall watchdog restarts playback that stopped moving.
  let lastTime = -1;
  let lastMoved = Date.now();
  setInterval(() => {
    let date = null;
    if (hls && hls.playingDate) date = hls.playingDate;
    else if (video.getStartDate && !isNaN(video.getStartDate().getTime())) {
      date = new Date(video.getStartDate().getTime() + video.currentTime * 1000);
    }
    if (date) {
      state.latency = (Date.now() - date.getTime()) / 1000;
      show("latency", `${state.latency.toFixed(1)} s`);
    }
    if (video.currentTime !== lastTime || video.paused) {
      lastTime = video.currentTime;
      lastMoved = Date.now();
    } else if (Date.now() - lastMoved > STALL_RESTART_MS && !restartTimer) {
      lastMoved = Date.now();
      restart("playback stalled");
    }
  }, 500);

  start();
})();
