// Dionysia's player page. One page for two addresses:
//   /watch/           the streams live now (from the router, through the edge)
//   /watch/{stream}   plays /{stream}/index.m3u8 from this edge, and shows
//                     the rendition playing, the ladder and the live latency.
//   /watch/{stream}?token=T   a token stream: plays /t/{T}/{stream}/index.m3u8.
//   /watch/{stream}?vod=S     the recording of session S: /{stream}/S/vod.m3u8.
//   /watch/{stream}?format=dash   plays /{stream}/manifest.mpd with dash.js
//                     instead (the same segments; see "DASH" below).
//
// Playback uses hls.js where Media Source Extensions exist, native HLS
// otherwise. hls.js runs in one of two modes, chosen per stream from its
// first media playlist (see "modes" below): low-latency when the playlist
// has parts (EXT-X-PART-INF), plain otherwise. A publish session is a timeline of its own (new segment names,
// new numbering, new timestamps): when the edge moves this viewer to another
// session (a 302 on a media playlist after the publisher moved or an origin
// died), the page starts the stream afresh at the live edge instead of
// trying to splice two timelines. Fatal errors and long stalls do the same,
// with a growing delay, so a viewer left open recovers by itself.
//
// DVR: a stream whose media playlist lists more than the live window (a
// profile's dvr_window at the origin) gets a seek bar over the time-shift
// range (the playlist's first segment to hls.js's live sync position) and a
// "Go live" button that starts playback afresh at the live edge; a live-only
// stream shows neither (see "DVR" below). The bar needs hls.js; native HLS
// keeps the video element's own controls.
//
// window.dionysia holds what the page shows, for tests and for debugging.
"use strict";

(function () {
  const STREAM_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
  const STALL_RESTART_MS = 10000;
  const state = {
    stream: null,
    engine: null,
    // "ll" (hls.js low-latency mode) or "plain"; null before the first start.
    mode: null,
    state: "idle",
    rendition: null,
    ladder: [],
    // Wall clock minus the PROGRAM-DATE-TIME of the frame on screen, seconds.
    latency: null,
    // hls.js's own estimate: the playlist's end (advanced by its age) minus
    // the playback position; it leaves out how late the playlist is.
    hlsLatency: null,
    // The latency hls.js aims at (PART-HOLD-BACK or the plain target below).
    targetLatency: null,
    // Parts hls.js loaded, and the parts the last media playlist listed.
    partLoads: 0,
    partList: 0,
    // Playback that stopped for want of data after it had started.
    stalls: 0,
    session: null,
    // DVR: the time-shift window listed (seconds; null for a live-only
    // stream), and how far behind the live sync position playback is.
    dvrWindow: null,
    behind: null,
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
        if (s.thumbnail) {
          // The live picture, remade every segment; a new query each
          // refresh makes the browser ask again (the edge ignores it and
          // answers from its cache, fresh for a segment).
          const img = document.createElement("img");
          img.className = "thumb";
          img.alt = "";
          img.width = 160;
          img.src = `${s.thumbnail}?t=${Date.now()}`;
          img.addEventListener("error", () => img.remove());
          a.append(img);
        }
        a.append(s.name);
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
  // A token stream's playback URL: /watch/{stream}?token=T plays
  // /t/{T}/{stream}/index.m3u8 (the token's characters need no escaping).
  const token = new URLSearchParams(location.search).get("token");
  const prefix = token && /^[A-Za-z0-9._-]{1,200}$/.test(token) ? `/t/${token}` : "";
  // A recording: /watch/{stream}?vod={session} plays the recording's VOD
  // playlist, /{stream}/{session}/vod.m3u8, from the start.
  const vod = new URLSearchParams(location.search).get("vod");
  state.vod = vod && /^[A-Za-z0-9_-]{1,64}$/.test(vod) ? vod : null;
  if (state.vod) show("title", `${state.stream} (recording ${state.vod})`);
  // DASH: /watch/{stream}?format=dash (live only; a recording plays its
  // VOD playlist).
  const FORMAT =
    !state.vod && new URLSearchParams(location.search).get("format") === "dash" ? "dash" : "hls";
  const src = state.vod
    ? `${prefix}/${state.stream}/${state.vod}/vod.m3u8`
    : `${prefix}/${state.stream}/index.m3u8`;
  let hls = null;
  let dash = null;
  let restartTimer = null;
  let retryDelay = 1000;

  // The publish session in a media playlist URL:
  // [/_v/{sid}][/t/{token}]/{stream}/{session}/{rendition}/index.m3u8
  const sessionOf = (url) => {
    const path = new URL(url, location.href).pathname.replace(/^\/_v\/[^/]+/, "").replace(/^\/t\/[^/]+/, "");
    const parts = path.split("/");
    return parts.length >= 5 ? parts[2] : null;
  };

  // ---- modes --------------------------------------------------------------
  // Low-latency: hls.js loads parts and uses blocking reloads, and aims at
  // the playlist's PART-HOLD-BACK (it does when liveSyncDuration and
  // liveSyncDurationCount are left unset). After a stall it adds a second to
  // its target (liveSyncOnStallIncrease, at most one target duration) and
  // plays up to 10 % faster to come back to it while more than a second is
  // buffered; the speed-up is how a stall's lost time is won back.
  //
  // Plain: segments only. hls.js's default, which the page also set until
  // 2026-12-01 (liveSyncDurationCount: 3), starts three target durations
  // behind the playlist's end and never speeds up, so the lag of a slow start
  // or a stall stays for good: 10 to 12 s glass to glass with 2 s segments
  // (loadtest/bench/latency.sh). The page aims two target durations plus a
  // second behind the live edge hls.js estimates (the playlist's end plus
  // the time since it last grew): one target duration for the next segment
  // to be made and listed, one for the reload that finds it (hls.js reloads
  // every segment duration, or half of it after an unchanged playlist), and
  // a second for its fetch and for jitter. It plays up to 10 % faster to get
  // back there (maxLiveSyncPlaybackRate; hls.js applies it only with
  // lowLatencyMode on, its default, which changes nothing else for a
  // playlist without parts: no blocking reloads, no parts), and hls.js adds
  // a second to the target after each stall (at most one target duration).
  const PLAIN_SYNC_TARGETS = 2;
  const PLAIN_SYNC_MARGIN = 1.0;
  const common = {
    maxLiveSyncPlaybackRate: 1.1,
    // Played media kept for seeking back; bounds memory on a page left open.
    backBufferLength: 30,
    // Media playlists change every segment: retry them briefly, then
    // let the page start afresh (see the header).
    playlistLoadPolicy: { default: {
      maxTimeToFirstByteMs: 5000, maxLoadTimeMs: 10000,
      timeoutRetry: { maxNumRetry: 2, retryDelayMs: 500, maxRetryDelayMs: 2000 },
      errorRetry: { maxNumRetry: 3, retryDelayMs: 500, maxRetryDelayMs: 2000 },
    } },
  };
  const configFor = (mode, targetDuration) => {
    if (mode === "ll") return { ...common, lowLatencyMode: true };
    const cfg = { ...common, lowLatencyMode: true };
    if (targetDuration) cfg.liveSyncDuration = PLAIN_SYNC_TARGETS * targetDuration + PLAIN_SYNC_MARGIN;
    return cfg;
  };

  // The first media playlist of the stream: whether it has parts, and its
  // target duration. One request for each playlist before hls.js asks for
  // them (the edge caches both); a failure leaves the choice to hls.js's own
  // view of the playlist (see LEVEL_LOADED).
  async function probe() {
    const get = async (url) => {
      const resp = await fetch(url, { cache: "no-store" });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      return { text: await resp.text(), url: resp.url };
    };
    try {
      const master = await get(src);
      const line = master.text.split("\n").map((l) => l.trim()).find((l) => l && !l.startsWith("#"));
      const media = line ? await get(new URL(line, master.url).href) : master;
      const td = media.text.match(/^#EXT-X-TARGETDURATION:(\d+)/m);
      return { mode: /^#EXT-X-PART-INF:/m.test(media.text) ? "ll" : "plain", targetDuration: td ? Number(td[1]) : null };
    } catch (e) {
      return { mode: "plain", targetDuration: null };
    }
  }

  // ---- DVR ------------------------------------------------------------------
  // The live window is what the origin lists without a DVR window: twelve
  // target durations with parts, three without (origin/src/package/playlist.rs).
  // A playlist listing more than that plus two target durations is a DVR one.
  const dvrWindowOf = (details) => {
    const td = details.targetduration || 1;
    const live = (details.partList && details.partList.length ? 12 : 3) * td;
    return details.live && details.totalduration > live + 2 * td ? details.totalduration : null;
  };
  const seek = $("seek");
  let dragging = false;
  // The live end playback returns to: hls.js's live sync position, else the
  // end of what can be seeked.
  const liveEdge = () => {
    if (hls && hls.liveSyncPosition != null) return hls.liveSyncPosition;
    const r = video.seekable;
    return r.length ? r.end(r.length - 1) : null;
  };
  function updateDvr() {
    $("dvr").hidden = !state.dvrWindow;
    const r = video.seekable;
    const edge = liveEdge();
    if (!state.dvrWindow || !r.length || edge == null) { state.behind = null; return; }
    state.behind = Math.max(0, edge - video.currentTime);
    // The window's start: the playlist's first segment (MSE's seekable
    // range of a live stream starts where playback began).
    const details = hls && hls.latestLevelDetails;
    const start = Math.max(r.start(0), details ? details.fragmentStart : 0);
    if (!dragging) {
      seek.min = start.toFixed(1);
      seek.max = Math.max(edge, start).toFixed(1);
      seek.value = video.currentTime.toFixed(1);
    }
    // Within a target duration of the live sync position is live.
    const td = details ? details.targetduration : 2;
    const atLive = state.behind <= td;
    show("behind", atLive ? "live" : `-${Math.round(state.behind)} s`);
    $("golive").disabled = atLive;
  }
  seek.addEventListener("input", () => { dragging = true; });
  seek.addEventListener("change", () => {
    dragging = false;
    video.currentTime = Number(seek.value);
    video.play().catch(() => {});
  });
  // "Go live" starts playback afresh at the live edge (as after a session
  // move) rather than seeking there: hls.js 1.7.4, seeked from a minute back
  // to its live sync position, sat buffering at the next segment boundary
  // for 5 to 8 s and then played that far behind, beyond its catch-up range
  // (e2e/tests/dvr.rs measured it; a seek to a keyframe just before the sync
  // position did the same). A fresh start lands at the live edge in about a
  // second, in the same mode.
  $("golive").addEventListener("click", () => {
    if (!hls) {
      const edge = liveEdge();
      if (edge != null) video.currentTime = edge;
      video.play().catch(() => {});
      return;
    }
    const details = hls.latestLevelDetails;
    modeHint = { mode: state.mode, targetDuration: details ? details.targetduration : null };
    if (restartTimer) { clearTimeout(restartTimer); restartTimer = null; }
    start();
  });

  let startId = 0;
  let modeHint = null;
  async function start() {
    restartTimer = null;
    if (hls) { hls.destroy(); hls = null; }
    if (dash) { dash.reset(); dash = null; }
    state.session = null;
    state.partList = 0;
    state.dvrWindow = null;
    setState("loading");
    if (FORMAT === "dash") {
      await startDash();
    } else if (window.Hls && Hls.isSupported()) {
      const id = ++startId;
      const probed = modeHint || await probe();
      modeHint = null;
      if (id !== startId) return;
      state.mode = probed.mode;
      show("mode", probed.mode === "ll" ? "low-latency HLS (parts)" : "HLS (segments)");
      state.engine = `hls.js ${Hls.version}`;
      hls = new Hls(configFor(probed.mode, probed.targetDuration));
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
        const details = data.details;
        state.partList = details.partList ? details.partList.length : 0;
        state.dvrWindow = dvrWindowOf(details);
        // The playlist hls.js sees decides when the probe could not (or the
        // stream changed profile): start again in the right mode.
        const mode = details.partList && details.partList.length ? "ll" : "plain";
        if (details.live && mode !== state.mode) {
          modeHint = { mode, targetDuration: details.targetduration };
          restart(`playlist is ${mode === "ll" ? "low-latency" : "plain"}`, 0);
          return;
        }
        const nd = data.networkDetails;
        const url = (nd && (nd.responseURL || nd.url)) || details.url;
        const session = sessionOf(url);
        if (!session) return;
        if (state.session && session !== state.session) {
          restart(`stream moved to session ${session}`, 0);
          return;
        }
        state.session = session;
      });
      hls.on(Hls.Events.FRAG_LOADED, (_e, data) => {
        if (data.part) state.partLoads += 1;
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

  // ---- DASH ---------------------------------------------------------------
  // ?format=dash plays the stream's live MPD with dash.js, loaded only for
  // such pages. The MPD carries its own clock (UTCTiming, inline), so
  // dash.js asks no time server; it plays suggestedPresentationDelay behind
  // the live edge, catching up by at most 10 % (and by a seek past a drift
  // the window cannot hold). Errors restart as for HLS;
  // a new publish session (the Period's id) restarts at the live edge.
  async function startDash() {
    const id = ++startId;
    try {
      if (!window.dashjs) {
        await new Promise((resolve, reject) => {
          const s = document.createElement("script");
          s.src = "/watch/assets/dash.mediaplayer.min.js";
          s.onload = resolve;
          s.onerror = () => reject(new Error("dash.js did not load"));
          document.head.append(s);
        });
      }
    } catch (e) {
      restart(e.message);
      return;
    }
    if (id !== startId) return;
    state.mode = "dash";
    show("mode", "DASH (segments)");
    state.engine = `dash.js ${dashjs.Version || ""}`.trim();
    show("engine", state.engine);
    const player = dashjs.MediaPlayer().create();
    player.updateSettings({
      streaming: {
        buffer: { bufferToKeep: 30 },
        liveCatchup: { enabled: true, playbackRate: { min: -0.1, max: 0.1 } },
        retryAttempts: { MPD: 3, MediaSegment: 3 },
      },
    });
    const E = dashjs.MediaPlayer.events;
    const describeRep = (r) => (r.height ? `${r.height}p` : "audio") + ` ${Math.round((r.bandwidth || r.bitrateInKbit * 1000 || 0) / 1000)} kb/s`;
    player.on(E.STREAM_INITIALIZED, () => {
      // Fallen further behind than the window allows (a long stall), dash.js
      // would wait for segments no longer listed: past this drift from its
      // target it seeks back to it instead.
      const target = player.getTargetLiveDelay() || 0;
      let dvr = NaN;
      try { dvr = player.getDvrWindow().size; } catch (e) { /* older API */ }
      const maxDrift = dvr > target ? Math.max(1, dvr - target - 1) : Math.max(1, target / 2);
      player.updateSettings({ streaming: { liveCatchup: { maxDrift } } });
      state.targetLatency = target;
      const reps = player.getRepresentationsByType ? player.getRepresentationsByType("video") : [];
      state.ladder = reps.map(describeRep);
      show("ladder", state.ladder.join(", "));
      video.play().catch(() => {});
    });
    player.on(E.QUALITY_CHANGE_RENDERED, (e) => {
      if (e.mediaType !== "video" || !e.newRepresentation) return;
      state.rendition = describeRep(e.newRepresentation);
      show("rendition", state.rendition);
    });
    // The Period's id is the publish session: a new one (a republish, or
    // the edge moved this viewer to another origin) is a new timeline, so
    // start afresh at its live edge, as for HLS.
    player.on(E.MANIFEST_LOADED, (e) => {
      const m = e.data || {};
      const periods = m.Period_asArray || (Array.isArray(m.Period) ? m.Period : [m.Period]);
      const session = periods[0] && periods[0].id;
      if (!session) return;
      if (state.session && session !== state.session) {
        restart(`stream moved to session ${session}`, 0);
        return;
      }
      state.session = session;
    });
    player.on(E.ERROR, (e) => {
      const err = e.error || {};
      restart(`dash.js: ${err.message || err.code || "error"}`);
    });
    dash = player;
    player.initialize(video, `${prefix}/${state.stream}/manifest.mpd`, true);
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

  let started = false;
  video.addEventListener("playing", () => { setState("playing"); retryDelay = 1000; started = true; });
  video.addEventListener("waiting", () => {
    if (started && state.state === "playing") state.stalls += 1;
    setState("buffering");
  });

  // Live latency: the wall clock minus the PROGRAM-DATE-TIME of the frame on
  // screen. A stall watchdog restarts playback that stopped moving.
  let lastTime = -1;
  let lastMoved = Date.now();
  setInterval(() => {
    let date = null;
    if (dash) {
      const l = dash.getCurrentLiveLatency();
      if (l > 0) { state.latency = l; show("latency", `${l.toFixed(1)} s`); }
    } else if (hls && hls.playingDate) date = hls.playingDate;
    else if (video.getStartDate && !isNaN(video.getStartDate().getTime())) {
      date = new Date(video.getStartDate().getTime() + video.currentTime * 1000);
    }
    if (date && !isNaN(date.getTime())) {
      state.latency = (Date.now() - date.getTime()) / 1000;
      show("latency", `${state.latency.toFixed(1)} s`);
    }
    if (hls) {
      state.hlsLatency = hls.latency || null;
      state.targetLatency = hls.targetLatency;
    }
    updateDvr();
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
