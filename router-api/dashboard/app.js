// Dionysia's dashboard: the admin API driven from the browser.
//
// The admin token lives in sessionStorage only (gone with the tab), and is
// sent as a bearer token to /admin/*. Everything shown is built with DOM
// calls and textContent, never innerHTML, so a stream's fields cannot
// inject markup. No inline script or style: the page's CSP forbids them.
"use strict";

const TOKEN_KEY = "dionysia.adminToken";
const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);
let config = { public_edge_url: null, rtmp_url: null };
let timer = null;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function status(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// One admin API call; 401 signs out.
async function api(method, path, body) {
  const opts = { method, headers: { Authorization: `Bearer ${token()}` } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!resp.ok) {
    const msg = (data && data.error) || `HTTP ${resp.status}`;
    if (resp.status === 401) signOut("The admin token was refused.");
    throw new ApiError(resp.status, msg);
  }
  return data;
}

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) e.append(c);
  return e;
}

function button(label, onClick, extra) {
  const b = el("button", { type: "button", textContent: label, ...(extra || {}) });
  b.addEventListener("click", onClick);
  return b;
}

function kbps(bits) { return bits ? `${Math.round(bits / 1000)} kb/s` : ""; }

function rtmpServer() {
  return config.rtmp_url || `rtmp://${location.hostname}/live`;
}

function edgeUrl(path) { return config.public_edge_url ? config.public_edge_url + path : path; }

async function copy(id) {
  const text = $(id).textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    // Not a secure context: select it so the operator can copy by hand.
    const r = document.createRange();
    r.selectNodeContents($(id));
    getSelection().removeAllRanges();
    getSelection().addRange(r);
  }
  status(`Copied ${id.replace("secret-", "").replace("minted-", "")}.`);
}

function showSecret(title, created) {
  $("secret-title").textContent = title;
  $("secret-server").textContent = rtmpServer();
  $("secret-key").textContent = created.key;
  $("secret").hidden = false;
}

function row(s) {
  const state = !s.enabled ? "disabled" : s.live ? "live" : "offline";
  const tr = el("tr", {});
  tr.dataset.stream = s.name;
  tr.dataset.state = state;
  tr.dataset.record = s.record ? "on" : "off";
  const origins = s.origins.map((o) => o.origin).join(", ");
  const renditions = el("td", { className: "renditions" });
  const first = s.origins[0];
  for (const r of (first ? first.renditions : [])) {
    renditions.append(el("div", { textContent: [r.name, r.resolution, kbps(r.bandwidth)].filter(Boolean).join(" ") }));
  }
  const policy = el("select", { className: "playback", title: "playback policy" });
  for (const p of ["public", "token"]) policy.append(el("option", { value: p, textContent: p, selected: s.playback === p }));
  policy.addEventListener("change", () => act(`Playback of ${s.name} is now ${policy.value}.`,
    () => api("PATCH", `/admin/streams/${s.name}`, { playback: policy.value })));
  const actions = el("td", { className: "actions" },
    button(s.enabled ? "Disable" : "Enable", () => act(`${s.name} ${s.enabled ? "disabled" : "enabled"}.`,
      () => api("PATCH", `/admin/streams/${s.name}`, { enabled: !s.enabled })), { className: "toggle" }),
    button("Rotate key", () => rotate(s.name), { className: "rotate" }),
    button("Playback URL", () => mint(s.name), { className: "mint" }),
    button("Preview", () => preview(s), { className: "preview" }),
    button(s.record ? "Stop recording" : "Record", () => act(
      `${s.name} ${s.record ? "is no longer recorded" : "is recorded from its next publish"}.`,
      () => api("PATCH", `/admin/streams/${s.name}`, { record: !s.record })),
    { className: "record", title: "keep each publish as a recording (from the next publish)" }),
    button("Recordings", () => recordings(s), { className: "recordings" }),
    button("Delete", () => remove(s.name), { className: "delete danger" }));
  const name = el("td", { className: "name", textContent: s.name, title: `profile ${s.profile}` });
  if (s.live && config.public_edge_url && s.playback !== "token") {
    // The live picture through the edge (a token stream's needs a token).
    // A new query each refresh makes the browser ask again; the edge
    // ignores it and answers from its cache, fresh for a segment.
    const img = el("img", { className: "thumb", alt: "", width: 160,
      src: edgeUrl(`/${s.name}/thumbnail-small.jpg?t=${Date.now()}`) });
    img.addEventListener("error", () => img.remove());
    name.prepend(img);
  }
  tr.append(
    name,
    el("td", { className: `state state-${state}`, textContent: state }),
    el("td", { className: "origins", textContent: origins }),
    renditions,
    el("td", { className: "viewers", textContent: String(s.viewers) }),
    el("td", {}, policy),
    actions);
  return tr;
}

async function refresh() {
  try {
    const streams = await api("GET", "/admin/streams");
    const body = $("streams").tBodies[0];
    // Keep an open <select> alone while the operator uses it.
    if (document.activeElement && document.activeElement.tagName === "SELECT") return;
    body.replaceChildren(...streams.map(row));
    $("empty").hidden = streams.length > 0;
    const live = streams.filter((s) => s.live).length;
    status(`${streams.length} streams, ${live} live, updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    if (e.status !== 401) status(`Refresh failed: ${e.message}`, true);
  }
}

async function act(done, call) {
  try {
    const r = await call();
    status(done);
    await refresh();
    return r;
  } catch (e) {
    status(e.message, true);
    return null;
  }
}

async function rotate(name) {
  if (!confirm(`Rotate the key of ${name}? A live publish with the old key ends.`)) return;
  const r = await act(`Key of ${name} rotated.`, () => api("POST", `/admin/streams/${name}/key`));
  if (r) showSecret(`New key for ${name}`, r);
}

async function remove(name) {
  if (!confirm(`Delete ${name}? Its key stops working and a live publish ends.`)) return;
  await act(`${name} deleted.`, () => api("DELETE", `/admin/streams/${name}`));
}

async function mint(name) {
  const r = await act(`Playback URL for ${name} minted.`,
    () => api("POST", `/admin/streams/${name}/playback-tokens`, { ttl_s: 3600 }));
  if (!r) return;
  $("minted-url").textContent = edgeUrl(r.url);
  $("minted-expiry").textContent = new Date(r.expires_at_ms).toLocaleString();
  $("minted").hidden = false;
}

async function preview(s) {
  $("preview-name").textContent = s.name;
  const frame = $("preview-frame");
  if (config.public_edge_url) {
    // A token stream: a short-lived token, minted for this preview and kept
    // only in the frame's address (never stored).
    let query = "";
    if (s.playback === "token") {
      const r = await act(`Preview token for ${s.name} minted.`,
        () => api("POST", `/admin/streams/${s.name}/playback-tokens`, { ttl_s: 3600 }));
      if (!r) return;
      query = `?token=${encodeURIComponent(r.token)}`;
    }
    frame.hidden = false;
    frame.src = edgeUrl(`/watch/${s.name}${query}`);
    $("preview-note").textContent = s.playback === "token" ? "Token stream: played with a token valid for an hour." : "";
  } else {
    frame.hidden = true;
    $("preview-note").textContent = `Set --public-edge-url to preview here; the player is /watch/${s.name} on any edge.`;
  }
  $("preview").hidden = false;
}

// A stream's recordings (GET /streams/{name}/recordings), newest first, each
// with a link to the player page (?vod=) and its VOD playlist on the edge.
async function recordings(s) {
  const list = await act(`Recordings of ${s.name} listed.`,
    () => api("GET", `/streams/${s.name}/recordings`));
  if (!list) return;
  // A token stream's links carry a token valid for an hour.
  let token = null;
  if (s.playback === "token") {
    const r = await act(`Token for ${s.name}'s recordings minted.`,
      () => api("POST", `/admin/streams/${s.name}/playback-tokens`, { ttl_s: 3600 }));
    if (!r) return;
    token = r.token;
  }
  $("recordings-name").textContent = s.name;
  const ul = $("recordings-list");
  ul.replaceChildren();
  for (const r of list) {
    const query = `?vod=${encodeURIComponent(r.session)}` + (token ? `&token=${encodeURIComponent(token)}` : "");
    const vod = token ? `/t/${encodeURIComponent(token)}${r.url}` : r.url;
    ul.append(el("li", { className: "recording" },
      el("span", { textContent: `${new Date(r.started_at_ms).toLocaleString()}, ${r.duration_s.toFixed(1)} s ` }),
      el("a", { className: "play", href: edgeUrl(`/watch/${s.name}${query}`), target: "_blank", rel: "noopener",
        textContent: "Play" }),
      " ",
      el("a", { className: "vod", href: edgeUrl(vod), target: "_blank", rel: "noopener", textContent: "VOD playlist" })));
  }
  $("recordings-empty").hidden = list.length > 0;
  $("recordings").hidden = false;
}

async function create(ev) {
  ev.preventDefault();
  const body = { name: $("new-name").value.trim() };
  const profile = $("new-profile").value.trim();
  if (profile) body.profile = profile;
  const r = await act(`${body.name} created.`, () => api("POST", "/admin/streams", body));
  if (r) {
    $("create-form").reset();
    showSecret(`Stream ${r.name} created`, r);
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(timer);
  timer = null;
  $("app").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  status("");
}

async function signIn(ev) {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  $("token").value = "";
  await start();
}

async function start() {
  try {
    await api("GET", "/admin/streams");
  } catch (e) {
    if (e.status !== 401) status(`The router API answered: ${e.message}`, true);
    return;
  }
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  await refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", async () => {
  try { config = await (await fetch("/dashboard/config.json")).json(); } catch (_) { /* defaults */ }
  $("signin-form").addEventListener("submit", signIn);
  $("create-form").addEventListener("submit", create);
  $("signout").addEventListener("click", () => signOut());
  $("secret-close").addEventListener("click", () => { $("secret").hidden = true; $("secret-key").textContent = ""; });
  $("minted-close").addEventListener("click", () => { $("minted").hidden = true; });
  $("recordings-close").addEventListener("click", () => { $("recordings").hidden = true; });
  $("preview-close").addEventListener("click", () => { $("preview").hidden = true; $("preview-frame").src = "about:blank"; });
  for (const b of document.querySelectorAll("button.copy")) b.addEventListener("click", () => copy(b.dataset.copy));
  if (token()) await start(); else signOut();
});
