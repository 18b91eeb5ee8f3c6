// pulse dashboard.
//
// The table of live sessions lives in one Map, keyed by name. It is filled
// by reading every page of GET v1/sessions, then kept current by the event
// stream GET v1/events, resumed from the first page's last_event_id so that
// the events declared while the pages were read are replayed over them.
// Every event carries the session as the event left it, so applying the
// events in order converges whatever the snapshot missed, and applying one
// twice changes nothing.
//
// Nothing is drawn per event: a change marks what is stale and asks for one
// animation frame, which redraws only the rows in view (the table is
// virtualised: a pool of <tr> reused for the visible slice, between two
// spacer rows that stand for the rest) and prepends the new feed entries.
//
// A server run with --api-token-file answers the API 401 without its token:
// the page then asks for it once, keeps it for the tab (sessionStorage) and
// sends it as "Authorization: Bearer" with every call, the event stream's
// too, which is why the stream is read with fetch and not EventSource (which
// cannot send headers); the token never goes in a URL.
//
// Beats are not events, so the stream alone would leave last_beat as it was
// at the session's last event. A light poll of what is on screen keeps the
// beat columns true: the whole table in one request while it is small, only
// the rows in view once it is large.

const PAGE_LIMIT = 1000; // the API's largest page
const OVERSCAN = 8; // rows drawn beyond each edge of the view
const FEED_MAX = 200; // feed entries kept
const FEED_EVERY = 250; // ms between two redraws of the feed, at least
const TICK_MS = 250; // how often the ages are redrawn
const SMALL_TABLE = 250; // up to this many sessions, poll the whole table
const UPSERT = new Set(["joined", "recovered", "suspect"]);
const REMOVE = new Set(["left", "dead", "replaced", "kicked"]);

const $ = (id) => document.getElementById(id);
const el = {
  scroll: $("scroll"),
  rows: $("rows"),
  empty: $("empty"),
  filter: $("filter"),
  stateFilter: $("state-filter"),
  sort: $("sort"),
  shown: $("shown"),
  feed: $("feed"),
  feedCount: $("feed-count"),
  conn: $("conn"),
  connText: $("conn-text"),
  alive: $("count-alive"),
  suspect: $("count-suspect"),
  total: $("count-total"),
  cluster: $("cluster"),
  storeBanner: $("store-banner"),
  storeText: $("store-text"),
};

// ---- state ----------------------------------------------------------------

/** @type {Map<string, Rec>} the live sessions by name */
let sessions = new Map();
const counts = { alive: 0, suspect: 0 };
let clockOffset = 0; // server clock minus this browser's clock, in ms

let order = []; // the names shown, filtered and sorted
let orderDirty = true; // membership, state or view options changed
let view = { terms: [], state: "", sort: "name" };

let feedPending = []; // events not yet drawn in the feed, oldest first
const feedSeen = new Set(); // IDs of the events in the feed, to drop replays
const feedOrder = []; // the same IDs, oldest first, to forget them in turn
let feedDrawnAt = -Infinity; // when the feed was last drawn (performance.now)
let feedTimer = 0;

let stream = null; // the EventStream
let refusals = 0; // streams refused in a row: the wait before the next grows
let generation = 0; // counts the fresh starts: a resync of an older one stops
let reloading = false; // a reset is being handled: events wait in held
let reloadAgain = false; // another reset came during that reload
let held = [];

// ---- sessions ---------------------------------------------------------------

/**
 * A session as the page keeps it: the API's JSON with times parsed to
 * milliseconds since the epoch (by the server's clock) and meta sorted.
 * @typedef {{name: string, id: string, peer: string, node: string, state: string,
 *   meta: [string, string][], connectedAt: number, lastBeat: number,
 *   beats: number, rtt: number|null, interval: number}} Rec
 */

/** @returns {Rec} */
function record(s) {
  return {
    name: s.name,
    id: s.id,
    peer: s.peer || "",
    node: s.node || "", // in a cluster, the node that holds it
    state: s.state,
    meta: s.meta ? Object.entries(s.meta).sort((a, b) => cmp(a[0], b[0])) : [],
    connectedAt: parseTime(s.connected_at),
    lastBeat: parseTime(s.last_beat),
    beats: s.beats || 0,
    rtt: typeof s.rtt_ms === "number" ? s.rtt_ms : null,
    interval: s.interval_ms || 0,
  };
}

// parseTime reads an RFC 3339 time with up to nanoseconds, which Date.parse
// is only sure to read with milliseconds.
function parseTime(s) {
  if (!s) return NaN;
  return Date.parse(s.replace(/(\.\d{3})\d+/, "$1"));
}

// put stores rec under its name (or deletes the name when rec is null) and
// keeps the counts up to date. The order of the rows is rebuilt only when
// what it depends on changed: which sessions there are, or their state.
function put(name, rec) {
  const old = sessions.get(name);
  if (old) tally(old.state, -1);
  if (rec) {
    sessions.set(name, rec);
    tally(rec.state, 1);
  } else {
    sessions.delete(name);
  }
  if (!old || !rec || old.id !== rec.id || old.state !== rec.state) orderDirty = true;
  schedule();
}

function tally(state, n) {
  if (Object.hasOwn(counts, state)) counts[state] += n;
}

// upsert stores a session an event or a page shows. For the same session
// (same ID), the beat columns only move forward: a replayed event or a poll
// answer older than what is held does not turn them back.
function upsert(rec) {
  const old = sessions.get(rec.name);
  if (old && old.id === rec.id && old.lastBeat > rec.lastBeat) {
    rec.lastBeat = old.lastBeat;
    rec.beats = old.beats;
    rec.rtt = old.rtt;
  }
  put(rec.name, rec);
}

// mergeBeats takes the beat columns of a polled session, when it is still
// the one held and its last beat is newer. State and membership come from
// the stream alone: a poll may be older than the last event applied.
function mergeBeats(s) {
  const old = sessions.get(s.name);
  if (!old || old.id !== s.id) return;
  const lastBeat = parseTime(s.last_beat);
  if (!(lastBeat > old.lastBeat)) return;
  const rec = { ...old, lastBeat, beats: s.beats || 0 };
  if (typeof s.rtt_ms === "number") rec.rtt = s.rtt_ms;
  put(old.name, rec);
}

// apply applies one session event to the table.
function apply(ev) {
  const s = ev.session;
  if (!s || !s.name) return;
  if (UPSERT.has(ev.kind)) {
    upsert(record(s));
  } else if (REMOVE.has(ev.kind)) {
    // Only the session the event is about: a "replaced" event for the old
    // ID comes right before the "joined" of the new one.
    const old = sessions.get(s.name);
    if (old && old.id === s.id) put(s.name, null);
  }
}

function replaceAll(snapshot) {
  sessions = snapshot;
  counts.alive = counts.suspect = 0;
  for (const rec of sessions.values()) tally(rec.state, 1);
  orderDirty = true;
  schedule();
}

// ---- the API token -------------------------------------------------------------

const TOKEN_KEY = "pulse-api-token";
let tokenDeclined = false; // the user cancelled the prompt: ask no more until a reload
let asking = null; // the prompt being shown, so that concurrent 401s share it

function authHeaders(headers) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

// askToken asks the user for the API token after a 401 and keeps it for the
// tab; it returns false if there is none to try.
async function askToken(wrong) {
  if (tokenDeclined) return false;
  if (!asking) {
    asking = (async () => {
      if (wrong) sessionStorage.removeItem(TOKEN_KEY);
      const text = wrong
        ? "That token was not accepted. The pulse API token:"
        : "This pulse server wants its API token (the content of its --api-token-file):";
      const token = (window.prompt(text) || "").trim();
      if (!token) {
        tokenDeclined = true;
        return false;
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      return true;
    })().finally(() => {
      asking = null;
    });
  }
  return asking;
}

// apiFetch is fetch with the token; on a 401 it asks for the token and
// tries once more with it.
async function apiFetch(url, init = {}) {
  for (let attempt = 0; ; attempt++) {
    const sent = sessionStorage.getItem(TOKEN_KEY);
    const resp = await fetch(url, { ...init, headers: authHeaders({ ...init.headers }) });
    if (resp.status !== 401 || attempt > 0) return resp;
    // Another call may have stored a token meanwhile: try that one.
    const now = sessionStorage.getItem(TOKEN_KEY);
    if (now && now !== sent) continue;
    if (!(await askToken(Boolean(sent)))) return resp;
  }
}

// ---- the API ------------------------------------------------------------------

async function getJSON(url) {
  const t0 = Date.now();
  const resp = await apiFetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // not JSON: said below
  }
  if (!resp.ok) {
    const msg = body && body.error ? body.error.message : `HTTP ${resp.status}`;
    throw new Error(msg);
  }
  if (body && body.server_time) sampleClock(body.server_time, t0, Date.now());
  return body;
}

// sampleClock sets the offset of the server's clock from a time it gave
// between t0 and t1 by ours: it took it, at best guess, half way.
function sampleClock(serverTime, t0, t1) {
  const t = parseTime(serverTime);
  if (!Number.isNaN(t)) clockOffset = t - (t0 + t1) / 2;
}

function serverNow() {
  return Date.now() + clockOffset;
}

// loadAll reads every page of the table and returns it, with the event ID
// the first page was taken at: the stream resumes from there.
async function loadAll() {
  const snapshot = new Map();
  let cursor = "";
  let lastEventId = null;
  do {
    let url = `v1/sessions?limit=${PAGE_LIMIT}`;
    if (cursor) url += `&cursor=${encodeURIComponent(cursor)}`;
    const page = await getJSON(url);
    if (lastEventId === null) lastEventId = page.last_event_id || "";
    for (const s of page.sessions || []) snapshot.set(s.name, record(s));
    cursor = page.next_cursor || "";
  } while (cursor);
  return { snapshot, lastEventId };
}

async function kick(name) {
  const url = `v1/sessions/${encodeURIComponent(name)}?reason=${encodeURIComponent("kicked from the dashboard")}`;
  const resp = await apiFetch(url, { method: "DELETE" });
  if (!resp.ok && resp.status !== 404) {
    let msg = `HTTP ${resp.status}`;
    try {
      msg = (await resp.json()).error.message;
    } catch {
      // keep the status
    }
    throw new Error(msg);
  }
}

// ---- the stream ---------------------------------------------------------------

// start loads the table and opens the stream, retrying with backoff until
// the API answers.
async function start() {
  generation++;
  reloading = false;
  held = [];
  for (let attempt = 0; ; attempt++) {
    try {
      const { snapshot, lastEventId } = await loadAll();
      replaceAll(snapshot);
      openStream(lastEventId);
      return;
    } catch (err) {
      setConn("reconnecting", `cannot load the sessions: ${err.message}`);
      await sleep(backoff(attempt));
    }
  }
}

// EventStream reads server-sent events with fetch, so that it can send the
// API token, which EventSource cannot. It does what the page used of
// EventSource: readyState, named events, onmessage and onerror; after a cut
// it reconnects by itself with Last-Event-ID, after the server's retry
// time; an error answer (such as 401) closes it.
class EventStream {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;

  constructor(url) {
    this.url = url;
    this.readyState = EventStream.CONNECTING;
    this.lastEventId = "";
    this.retry = 3000;
    this.listeners = new Map();
    this.onmessage = null;
    this.onerror = null;
    this.abort = new AbortController();
    this.run();
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  close() {
    this.readyState = EventStream.CLOSED;
    this.abort.abort();
  }

  dispatch(type, data) {
    const e = { type, data, lastEventId: this.lastEventId };
    if (type === "message" && this.onmessage) this.onmessage(e);
    for (const fn of this.listeners.get(type) || []) fn(e);
  }

  failed() {
    if (this.onerror) this.onerror({ type: "error" });
  }

  async run() {
    while (this.readyState !== EventStream.CLOSED) {
      const headers = authHeaders({ Accept: "text/event-stream" });
      if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
      let resp;
      try {
        resp = await fetch(this.url, { headers, cache: "no-store", signal: this.abort.signal });
      } catch {
        resp = null; // the network failed: retry, as EventSource does
      }
      if (this.readyState === EventStream.CLOSED) return;
      if (resp && (!resp.ok || !(resp.headers.get("Content-Type") || "").startsWith("text/event-stream"))) {
        this.status = resp.status;
        this.readyState = EventStream.CLOSED;
        this.failed();
        return;
      }
      if (resp) {
        this.readyState = EventStream.OPEN;
        try {
          await this.read(resp.body);
        } catch {
          // cut: reconnect below
        }
        if (this.readyState === EventStream.CLOSED) return;
      }
      this.readyState = EventStream.CONNECTING;
      this.failed();
      await sleep(this.retry);
    }
  }

  // read parses the stream as the HTML standard says: lines of field: value,
  // a blank line ending each message.
  async read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    let type = "";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") {
          if (data.length > 0) this.dispatch(type || "message", data.join("\n"));
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") type = val;
        else if (field === "data") data.push(val);
        else if (field === "id" && !val.includes("\0")) this.lastEventId = val;
        else if (field === "retry" && /^\d+$/.test(val)) this.retry = Number(val);
      }
    }
  }
}

function openStream(lastEventId) {
  const es = new EventStream(`v1/events?last_event_id=${encodeURIComponent(lastEventId)}`);
  stream = es;
  es.addEventListener("ready", () => {
    refusals = 0;
    if (!reloading) setConn("live");
  });
  es.addEventListener("reset", (e) => {
    refusals = 0;
    const d = safeJSON(e.data) || {};
    note("reset", d.reason || "the server could not resume the stream");
    resync();
  });
  es.onmessage = (e) => {
    const ev = safeJSON(e.data);
    if (!ev || !ev.kind) return;
    addToFeed(ev);
    if (reloading) held.push(ev);
    else apply(ev);
  };
  es.onerror = () => {
    if (es !== stream) return;
    if (es.readyState === EventStream.CLOSED) {
      // An error answer, not a cut: start over (which asks for the token
      // if that was why).
      es.close();
      stream = null;
      setConn("reconnecting", `the event stream was refused (HTTP ${es.status})`);
      sleep(backoff(refusals++)).then(start);
    } else {
      // The stream reconnects by itself, sending Last-Event-ID; the
      // server then replays what was missed, or sends a reset.
      setConn("reconnecting", "the event stream was cut; reconnecting");
    }
  };
}

// resync handles a reset: the stream goes on from now, but what happened
// before is lost, so the table is read again. The events that come
// meanwhile wait, then are applied over the new table.
async function resync() {
  held = [];
  if (reloading) {
    reloadAgain = true; // the table being read may predate this reset
    return;
  }
  reloading = true;
  const gen = generation;
  setConn("resyncing", "reloading the sessions");
  for (let attempt = 0; ; attempt++) {
    reloadAgain = false;
    try {
      const { snapshot } = await loadAll();
      if (gen !== generation) return; // the stream was refused and start took over
      if (reloadAgain) continue;
      replaceAll(snapshot);
      break;
    } catch (err) {
      if (gen !== generation) return;
      setConn("resyncing", `cannot reload the sessions: ${err.message}`);
      await sleep(backoff(attempt));
    }
  }
  for (const ev of held) apply(ev);
  held = [];
  reloading = false;
  if (stream && stream.readyState === EventStream.OPEN) setConn("live");
}

const CONN_TEXT = { loading: "loading", live: "live", reconnecting: "reconnecting", resyncing: "resyncing" };

function setConn(status, why = "") {
  el.conn.dataset.status = status;
  el.connText.textContent = CONN_TEXT[status] || status;
  el.conn.title = why || (status === "live" ? "following the event stream" : "");
}

// ---- polling the beat columns ------------------------------------------------

let polling = false;

async function poll() {
  if (polling || document.hidden || !stream || stream.readyState !== EventStream.OPEN) return;
  polling = true;
  try {
    if (sessions.size <= SMALL_TABLE) {
      const page = await getJSON(`v1/sessions?limit=${PAGE_LIMIT}`);
      for (const s of page.sessions || []) mergeBeats(s);
    } else {
      // Only the rows in view, in one request.
      const names = order.slice(first, first + pool.length);
      if (names.length > 0) {
        const page = await getJSON(`v1/sessions?names=${names.map(encodeURIComponent).join(",")}`);
        for (const s of page.sessions || []) mergeBeats(s);
      }
    }
  } catch {
    // the stream's status tells the user; try again next time
  } finally {
    polling = false;
  }
}

// pollEvery is the time between polls: about the shortest beat interval in
// view, within 1 to 5 s.
function pollEvery() {
  let iv = Infinity;
  for (const name of order.slice(first, first + pool.length)) {
    const rec = sessions.get(name);
    if (rec && rec.interval) iv = Math.min(iv, rec.interval);
  }
  const base = sessions.size <= SMALL_TABLE ? 1000 : 2000;
  return Math.min(5000, Math.max(base, Number.isFinite(iv) ? iv : 3000));
}

function pollLoop() {
  poll().finally(() => setTimeout(pollLoop, pollEvery()));
}

// ---- the cluster ----------------------------------------------------------------

// In a cluster (pulse serve --redis) the header names the node that answers
// and how many nodes there are, and a banner says when that node cannot
// reach the cluster's store: it then shows what it last knew, its own
// sessions exact, the other nodes' as last seen. A single server answers
// "store": "none" and nothing is shown.
const CLUSTER_EVERY = 2000; // ms between two reads of v1/cluster

async function pollCluster() {
  if (document.hidden) return;
  try {
    showCluster(await getJSON("v1/cluster"));
  } catch {
    // the connection status tells the user; keep what is shown
  }
}

function showCluster(cl) {
  const inCluster = Boolean(cl && cl.store && cl.store !== "none");
  el.cluster.hidden = !inCluster;
  el.storeBanner.hidden = !(inCluster && cl.store === "unreachable");
  document.body.dataset.store = (cl && cl.store) || "";
  if (!inCluster) return;
  const nodes = cl.nodes || [];
  setText(el.cluster, `node ${cl.node} · ${fmtInt(nodes.length)} node${nodes.length === 1 ? "" : "s"}`);
  el.cluster.title = nodes.map((n) => `${n.name}: ${fmtInt(n.sessions)} session${n.sessions === 1 ? "" : "s"}`).join("\n");
  setText(
    el.storeText,
    `Node ${cl.node} cannot reach the cluster's store and shows what it last knew: its own sessions are exact; ` +
      "other nodes' sessions may be stale and their events do not arrive until the store is back, and kicking them fails meanwhile.",
  );
}

function clusterLoop() {
  pollCluster().finally(() => setTimeout(clusterLoop, CLUSTER_EVERY));
}

// ---- the view -------------------------------------------------------------------

let frame = 0;

// schedule asks for one redraw at the next animation frame, however many
// changes come before it.
function schedule() {
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  if (orderDirty) rebuildOrder();
  renderRows();
  renderCounts();
  renderFeed();
}

// parseFilter splits the filter box into terms: "key=value" matches a meta
// label (a value containing value; "key=" any value), anything else a part
// of the name. Every term must match.
function parseFilter(text) {
  return text
    .trim()
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .map((t) => {
      const eq = t.indexOf("=");
      return eq > 0 ? { key: t.slice(0, eq), value: t.slice(eq + 1) } : { name: t };
    });
}

function matches(rec) {
  if (view.state && rec.state !== view.state) return false;
  for (const t of view.terms) {
    if (t.name !== undefined) {
      if (!rec.name.toLowerCase().includes(t.name)) return false;
    } else if (!rec.meta.some(([k, v]) => k.toLowerCase() === t.key && v.toLowerCase().includes(t.value))) {
      return false;
    }
  }
  return true;
}

const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const SORTS = {
  name: (a, b) => cmp(a.name, b.name),
  trouble: (a, b) => (a.state === b.state ? cmp(a.name, b.name) : a.state === "suspect" ? -1 : 1),
  newest: (a, b) => b.connectedAt - a.connectedAt || cmp(a.name, b.name),
};

function rebuildOrder() {
  orderDirty = false;
  const out = [];
  for (const rec of sessions.values()) if (matches(rec)) out.push(rec);
  out.sort(SORTS[view.sort] || SORTS.name);
  order = out.map((rec) => rec.name);
}

// The virtualised table: the tbody holds a spacer row standing for the rows
// above the view, the pool of rows drawn, and a spacer for those below.
let rowH = 28; // px; the CSS fixes it, the first drawn row confirms it
let rowMeasured = false;
let first = 0; // index in order of the first row drawn
const pool = [];
const topSpacer = spacer();
const bottomSpacer = spacer();
el.rows.append(topSpacer, bottomSpacer);

function spacer() {
  const tr = document.createElement("tr");
  tr.className = "spacer";
  tr.setAttribute("aria-hidden", "true");
  const td = document.createElement("td");
  td.colSpan = 9;
  tr.append(td);
  return tr;
}

function renderRows() {
  const total = order.length;
  const viewH = el.scroll.clientHeight;
  const top = el.scroll.scrollTop;
  const from = Math.max(0, Math.min(total, Math.floor(top / rowH) - OVERSCAN));
  const to = Math.min(total, Math.ceil((top + viewH) / rowH) + OVERSCAN);
  first = from;

  while (pool.length < to - from) {
    const tr = newRow();
    pool.push(tr);
    bottomSpacer.before(tr);
  }
  while (pool.length > to - from) pool.pop().remove();

  topSpacer.firstChild.style.height = `${from * rowH}px`;
  bottomSpacer.firstChild.style.height = `${(total - to) * rowH}px`;

  const now = serverNow();
  for (let i = 0; i < pool.length; i++) fillRow(pool[i], sessions.get(order[from + i]), now);

  if (!rowMeasured && pool.length) {
    rowMeasured = true;
    const h = pool[0].getBoundingClientRect().height;
    if (h > 0 && Math.abs(h - rowH) > 0.5) {
      rowH = h;
      schedule();
    }
  }

  el.empty.hidden = total > 0;
  if (!total) el.empty.textContent = sessions.size ? "no session matches the filter" : "no live sessions";
  el.shown.textContent =
    total === sessions.size
      ? `${fmtInt(total)} session${total === 1 ? "" : "s"}`
      : `${fmtInt(total)} of ${fmtInt(sessions.size)} shown`;
}

const CELLS = ["name", "state", "peer", "meta", "conn", "beat", "rtt", "beats", "kick"];

function newRow() {
  const tr = document.createElement("tr");
  tr.cells_ = {};
  for (const c of CELLS) {
    const td = document.createElement("td");
    td.className = `c-${c}`;
    tr.append(td);
    tr.cells_[c] = td;
  }
  const badge = document.createElement("span");
  tr.cells_.state.append(badge);
  tr.badge_ = badge;
  const btn = document.createElement("button");
  btn.type = "button";
  btn.className = "kick";
  btn.textContent = "×";
  tr.cells_.kick.append(btn);
  tr.kick_ = btn;
  return tr;
}

// fillRow draws rec in tr: everything when the row shows another record
// than last time, only the ages otherwise.
function fillRow(tr, rec, now) {
  const c = tr.cells_;
  if (tr.rec_ !== rec) {
    tr.rec_ = rec;
    tr.dataset.name = rec.name;
    tr.dataset.state = rec.state;
    tr.dataset.id = rec.id;
    setText(c.name, rec.name);
    c.name.title = `${rec.name}\nid ${rec.id}`;
    setText(tr.badge_, rec.state);
    tr.badge_.className = `badge ${rec.state}`;
    // In a cluster the peer cell also says which node holds the session.
    setText(c.peer, rec.node ? `${rec.peer} @ ${rec.node}` : rec.peer);
    c.peer.title = rec.node ? `${rec.peer}\nnode ${rec.node}` : rec.peer;
    fillMeta(c.meta, rec.meta);
    setText(c.rtt, rec.rtt === null ? "–" : fmtMillis(rec.rtt));
    setText(c.beats, fmtInt(rec.beats));
    c.conn.title = `connected ${fmtClock(rec.connectedAt, true)}`;
    c.beat.title = `last beat ${fmtClock(rec.lastBeat, true)}, beats every ${fmtAge(rec.interval)}`;
    tr.kick_.title = `kick ${rec.name}`;
    tr.kick_.setAttribute("aria-label", `kick ${rec.name}`);
  }
  setText(c.conn, fmtAge(now - rec.connectedAt));
  setText(c.beat, fmtAge(now - rec.lastBeat));
}

function fillMeta(td, meta) {
  const chips = meta.map(([k, v]) => {
    const chip = document.createElement("span");
    chip.className = "chip";
    const key = document.createElement("span");
    key.className = "k";
    key.textContent = k;
    const val = document.createElement("span");
    val.className = "v";
    val.textContent = v;
    chip.append(key, "=", val);
    return chip;
  });
  td.replaceChildren(...chips);
  td.title = meta.map(([k, v]) => `${k}=${v}`).join("\n");
}

// setText sets an element's text only when it changed, to spare the layout.
function setText(node, text) {
  if (node.text_ !== text) {
    node.text_ = text;
    node.textContent = text;
  }
}

let titleShown = "";

function renderCounts() {
  const total = counts.alive + counts.suspect;
  for (const [node, n] of [
    [el.alive, counts.alive],
    [el.suspect, counts.suspect],
    [el.total, total],
  ]) {
    setText(node, fmtInt(n));
    node.dataset.value = String(n);
  }
  el.suspect.parentElement.classList.toggle("hot", counts.suspect > 0);
  const title = counts.suspect ? `pulse · ${counts.suspect} suspect · ${total} live` : `pulse · ${total} live`;
  if (title !== titleShown) document.title = titleShown = title;
}

// ---- the feed -------------------------------------------------------------------

function addToFeed(ev) {
  if (ev.id) {
    if (feedSeen.has(ev.id)) return; // replayed
    feedSeen.add(ev.id);
    feedOrder.push(ev.id);
    if (feedOrder.length > 4 * FEED_MAX) feedSeen.delete(feedOrder.shift());
  }
  feedPending.push(ev);
  if (feedPending.length > FEED_MAX) feedPending.splice(0, feedPending.length - FEED_MAX);
  schedule();
}

// note adds a line of the page's own to the feed, such as a stream reset.
function note(kind, text) {
  addToFeed({ kind, time: new Date(serverNow()).toISOString(), reason: text, system: true });
}

// renderFeed draws the events that came since it last did, at most every
// FEED_EVERY ms: in a storm of events the feed moves in calm steps, and the
// page does not build entries that would be pushed out at once.
function renderFeed() {
  if (!feedPending.length) return;
  const wait = feedDrawnAt + FEED_EVERY - performance.now();
  if (wait > 0) {
    if (!feedTimer) {
      feedTimer = setTimeout(() => {
        feedTimer = 0;
        schedule();
      }, wait);
    }
    return;
  }
  feedDrawnAt = performance.now();
  const frag = document.createDocumentFragment();
  for (let i = feedPending.length - 1; i >= 0; i--) frag.append(feedItem(feedPending[i]));
  feedPending = [];
  el.feed.prepend(frag);
  while (el.feed.childElementCount > FEED_MAX) el.feed.lastElementChild.remove();
  el.feedCount.textContent = `${el.feed.childElementCount}`;
}

function feedItem(ev) {
  const li = document.createElement("li");
  li.className = `ev ${ev.system ? "system" : ""}`;
  li.dataset.kind = ev.kind;
  const name = ev.session ? ev.session.name : "";
  if (name) li.dataset.name = name;

  const time = document.createElement("time");
  time.dateTime = ev.time || "";
  time.textContent = fmtClock(parseTime(ev.time), false);

  const kind = document.createElement("span");
  kind.className = `kind ${ev.kind}`;
  kind.textContent = ev.kind;

  const who = document.createElement("button");
  who.type = "button";
  who.className = "name";
  // A stall is about the server itself, not a session.
  who.textContent = ev.kind === "stall" ? "(server)" : name;
  who.title = name ? `show ${name} in the table` : "";
  who.disabled = !name;

  const why = document.createElement("span");
  why.className = "why";
  const reason = document.createElement("span");
  reason.className = "reason";
  reason.textContent = ev.reason || "";
  why.append(reason);
  if (ev.detail) {
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = ev.detail;
    why.append(" ", detail);
  }

  const tip = [`${ev.kind} ${name}`.trim(), ev.reason, ev.detail];
  if (typeof ev.late_ms === "number") tip.push(`judged ${fmtMillis(ev.late_ms)} after its deadline`);
  if (ev.stall) {
    tip.push(`the server did not run for at least ${fmtAge(ev.stall.length_ms)}`);
    tip.push(`${fmtInt(ev.stall.overdue)} judgments held until what arrived meanwhile was read, then ${fmtAge(ev.stall.grace_ms)} more`);
  }
  if (ev.session && ev.session.peer) tip.push(`peer ${ev.session.peer}`);
  if (ev.session && ev.session.node) tip.push(`node ${ev.session.node}`);
  li.title = tip.filter(Boolean).join("\n");

  li.append(time, kind, who, why);
  return li;
}

// ---- formatting -------------------------------------------------------------------

const intFormat = new Intl.NumberFormat("en-US");
const fmtInt = (n) => intFormat.format(n);

function fmtMillis(ms) {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

// fmtAge writes a duration in ms the short way: 0.4s, 42s, 3m 07s, 5h 02m, 2d 4h.
function fmtAge(ms) {
  if (!Number.isFinite(ms)) return "–";
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  const pad = (n) => String(n).padStart(2, "0");
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

// fmtClock writes a server time in this browser's time zone: 14:03:07.412,
// or with the date when long.
function fmtClock(t, long) {
  if (!Number.isFinite(t)) return "–";
  const d = new Date(t);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  return long ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock}` : clock;
}

// ---- helpers ------------------------------------------------------------------

function safeJSON(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// backoff is the wait before retry number attempt: 1 s doubling to 15 s,
// drawn from its upper half so that many pages do not retry together.
function backoff(attempt) {
  const ms = Math.min(15000, 1000 * 2 ** attempt);
  return ms / 2 + Math.random() * (ms / 2);
}

// ---- wiring ---------------------------------------------------------------------

function viewChanged() {
  view = { terms: parseFilter(el.filter.value), state: el.stateFilter.value, sort: el.sort.value };
  orderDirty = true;
  schedule();
}

el.filter.addEventListener("input", viewChanged);
el.stateFilter.addEventListener("change", viewChanged);
el.sort.addEventListener("change", viewChanged);
el.scroll.addEventListener("scroll", schedule, { passive: true });
window.addEventListener("resize", schedule);
document.addEventListener("keydown", (e) => {
  // "/" focuses the filter, as on many sites; Escape clears it.
  if (e.key === "/" && document.activeElement !== el.filter) {
    e.preventDefault();
    el.filter.focus();
  } else if (e.key === "Escape" && document.activeElement === el.filter && el.filter.value) {
    el.filter.value = "";
    viewChanged();
  }
});

el.rows.addEventListener("click", async (e) => {
  const btn = e.target.closest("button.kick");
  if (!btn) return;
  const name = btn.closest("tr").dataset.name;
  if (!name || !confirm(`Kick ${name}?\n\nThe server closes its connection; its client may reconnect.`)) return;
  btn.disabled = true;
  try {
    await kick(name);
  } catch (err) {
    note("error", `cannot kick ${name}: ${err.message}`);
  } finally {
    btn.disabled = false;
  }
});

el.feed.addEventListener("click", (e) => {
  const who = e.target.closest("button.name");
  if (!who || !who.textContent) return;
  el.filter.value = who.textContent;
  viewChanged();
});

$("host").textContent = location.host;
setInterval(schedule, TICK_MS); // the ages tick
setConn("loading");
start().then(pollLoop);
clusterLoop();
