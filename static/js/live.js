// The one live client of /api/ws/progress, shared by every page: a store of each
// generation's latest state ordered by seq, which pages subscribe to, and a socket that keeps
// it current (heartbeat, reconnects with backoff and jitter, a resume by seq after each one).
// The protocol is the README's "Live progress" section; the server is progress/consumers.py.

const ACTIVE = new Set(["queued", "running"]);

/** Queued or running: the generation can still change. */
export const isActive = (status) => ACTIVE.has(status);

// What a message's data carries (GenerationData in generations/messages.py). The other keys
// of a state come from the API's JSON only (the request, its times, the admin's extras).
const LIVE_KEYS = [
  "status", "progress", "currentNode", "step", "totalSteps", "previewUrl", "error", "images",
  "queuePosition", "activity", "etaSeconds", "startsInSeconds", "owner",
]; // prettier-ignore

function withoutLiveKeys(state) {
  const rest = { ...state };
  for (const key of LIVE_KEYS) delete rest[key];
  return rest;
}

/**
 * Each generation's latest state. A message whose seq is not above the stored one is stale
 * and ignored; a snapshot with "recovered": false replaces the live part outright (it stands
 * in for messages the server lost). `accept(data)` decides which new generations to keep.
 * Subscribers get (id, change): change.kind is "message", "json" or "removed".
 */
export function createStore({ accept = () => true } = {}) {
  const states = new Map();
  const listeners = new Set();
  const notify = (id, change) => listeners.forEach((listener) => listener(id, change));

  /** A message from the socket; false when stale or not kept. */
  function apply(message) {
    const id = message.generationId;
    const seq = Number(message.seq);
    const data = message.data;
    if (typeof id !== "string" || !Number.isFinite(seq) || !data || typeof data !== "object") {
      return false;
    }
    const previous = states.get(id);
    if (previous ? seq <= previous.seq : !accept(data)) return false;
    const kept = message.recovered === false ? withoutLiveKeys(previous || {}) : previous;
    states.set(id, { ...kept, ...data, id, seq, messageAt: message.timestamp || null });
    notify(id, { kind: "message", message, previous });
    return true;
  }

  /** The API's JSON of a generation (a list page, a POST's answer, a GET). */
  function put(json) {
    if (!json || typeof json.id !== "string") return false;
    const previous = states.get(json.id);
    if (!previous && !accept(json)) return false;
    const seq = Number(json.seq) || 0;
    const fresh = !previous || seq >= previous.seq;
    // Older than what the socket told: keep the live part, take what only the JSON has.
    const state = fresh
      ? { ...previous, ...json, seq }
      : { ...previous, ...withoutLiveKeys(json), seq: previous.seq };
    if (previous && previous.cancelRequested) state.cancelRequested = true; // it never undoes
    states.set(json.id, state);
    notify(json.id, { kind: "json", fresh, previous });
    return true;
  }

  function forget(id) {
    if (states.delete(id)) notify(id, { kind: "removed" });
  }

  /** [id, seq] of every generation that may still have messages to catch up on. */
  function resumable() {
    return [...states.values()].filter((s) => isActive(s.status) && s.seq > 0).map((s) => [s.id, s.seq]);
  }

  function subscribe(listener) {
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  return {
    apply,
    put,
    forget,
    resumable,
    subscribe,
    get: (id) => states.get(id),
    seq: (id) => (states.get(id) || { seq: 0 }).seq,
    values: () => states.values(),
  };
}

// ---------------------------------------------------------------------------- the socket

const PING_EVERY_MS = 15000;
const PONG_WITHIN_MS = 10000;
const BACKOFF = { baseMs: 500, maxMs: 30000 };
// Over the open-socket cap (4429): retrying soon only meets the same cap, so wait longer.
const CROWDED_BACKOFF = { baseMs: 5000, maxMs: 120000 };
// The server takes 20 client frames a second per socket; the rest leaves room for pings.
const RESUMES_PER_SECOND = 15;
const SIGNED_OUT = 4401;
const TOO_MANY = 4429;
const FINAL = new Set([4400, 4403, 4404]); // a bad or forbidden request: retrying cannot help

/** Each `onStatus` status (below) as [the connection badge's data-state, its words]. */
export const STATUS_TEXT = {
  connecting: ["connecting", "Connecting…"],
  connected: ["connected", "Live"],
  reconnecting: ["reconnecting", "Reconnecting…"],
  offline: ["offline", "Offline — retrying…"],
  "too-many": ["offline", "Too many open tabs"],
  "signed-out": ["offline", "Signed out"],
  stopped: ["offline", "Not live"],
};

/**
 * Keep one socket to `path` open and feed every generation message to `store`.
 * `generationId` follows one generation (its reconnects carry ?afterSeq=); without it the
 * firehose is followed, and each reconnect sends a resume frame per active generation.
 * `onStatus(status, detail)`: "connecting", "connected" ({resumed}), "reconnecting",
 * "offline", "too-many" ({why, retryInMs}), "signed-out", "stopped" ({code, why}).
 */
export function connectLive({ store, path, generationId = null, onStatus = () => {} }) {
  let socket = null;
  let attempt = 0;
  let opens = 0; // sockets that reached the server (a reconnect resumes)
  let healthy = false; // this socket answered: a refused one also opens before it closes
  let lastHeard = 0;
  let pingSentAt = 0;
  let lastError = "";
  let stopped = false;
  let retryTimer = null;
  let heartbeat = null;

  function url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams();
    if (generationId) {
      query.set("generationId", generationId);
      if (store.seq(generationId) > 0) query.set("afterSeq", String(store.seq(generationId)));
    }
    const search = String(query) ? `?${query}` : "";
    return `${scheme}//${window.location.host}${path}${search}`;
  }

  function open() {
    clearTimeout(retryTimer);
    if (stopped) return;
    onStatus(opens ? "reconnecting" : "connecting", {});
    let ws;
    try {
      ws = new WebSocket(url());
    } catch {
      retry(BACKOFF, "reconnecting");
      return;
    }
    socket = ws;
    healthy = false;
    ws.addEventListener("open", () => ws === socket && opened(ws));
    ws.addEventListener("message", (event) => ws === socket && received(event.data));
    ws.addEventListener("close", (event) => ws === socket && closed(event.code));
  }

  function opened(ws) {
    opens += 1;
    lastHeard = Date.now();
    // The first pong says the server took this socket (an over-cap one is refused after open).
    sendPing();
    startHeartbeat();
    if (!generationId) resumeAll(ws);
  }

  function received(text) {
    lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!frame || typeof frame.type !== "string") return;
    if (frame.type === "error") {
      // Said before a close (its reason), or about a frame of ours the server refused.
      lastError = String(frame.error || "");
      console.warn(`progress socket: ${lastError}`);
      return;
    }
    if (!healthy) {
      healthy = true;
      attempt = 0;
      onStatus("connected", { resumed: opens > 1 });
    }
    if (frame.type.startsWith("generation.")) store.apply(frame);
  }

  function closed(code) {
    socket = null;
    stopHeartbeat();
    const why = lastError;
    lastError = "";
    if (code === SIGNED_OUT || FINAL.has(code)) {
      stopped = true;
      onStatus(code === SIGNED_OUT ? "signed-out" : "stopped", { code, why });
    } else if (code === TOO_MANY) {
      retry(CROWDED_BACKOFF, "too-many", why);
    } else {
      retry(BACKOFF, navigator.onLine === false ? "offline" : "reconnecting");
    }
  }

  function retry(backoff, status, why = "") {
    const delay = Math.min(backoff.maxMs, backoff.baseMs * 2 ** attempt);
    const jittered = delay * (0.75 + Math.random() * 0.5); // tabs cut together spread out
    attempt += 1;
    onStatus(status, { why, retryInMs: jittered });
    retryTimer = setTimeout(open, jittered);
  }

  /** After any open: what each active generation missed since its seq (the server replays
   * it, or sends a "recovered": false snapshot). A few per second: floods are refused. */
  function resumeAll(ws) {
    const frames = store.resumable().map(([id, seq]) => ({
      type: "resume",
      generationId: id,
      afterSeq: seq,
    }));
    const sendSome = () => {
      if (ws !== socket || ws.readyState !== WebSocket.OPEN) return;
      frames.splice(0, RESUMES_PER_SECOND).forEach((frame) => ws.send(JSON.stringify(frame)));
      if (frames.length) setTimeout(sendSome, 1000);
    };
    sendSome();
  }

  function sendPing() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send('{"type":"ping"}');
    pingSentAt = Date.now();
  }

  /** A ping every so often; no answer in time means the socket is dead. (Measured from the
   * ping, so a background tab's throttled timers do not make a live socket look dead.) */
  function startHeartbeat() {
    stopHeartbeat();
    heartbeat = setInterval(() => {
      if (lastHeard < pingSentAt) {
        if (Date.now() - pingSentAt > PONG_WITHIN_MS) reconnectNow();
        return;
      }
      sendPing();
    }, PING_EVERY_MS);
  }

  function stopHeartbeat() {
    clearInterval(heartbeat);
    heartbeat = null;
  }

  /** Drop a socket that may be dead (sleep, network change) and connect again at once. */
  function reconnectNow() {
    const old = socket;
    socket = null; // its close event is no longer ours
    stopHeartbeat();
    try {
      if (old) old.close(4000, "reconnecting");
    } catch {
      /* already closed */
    }
    attempt = 0;
    open();
  }

  /** Back from sleep or offline: check the socket now instead of waiting for the timers. */
  function wake() {
    if (stopped) return;
    if (socket && socket.readyState === WebSocket.OPEN) {
      const sentAt = Date.now();
      sendPing();
      setTimeout(() => socket && lastHeard < sentAt && reconnectNow(), PONG_WITHIN_MS / 2);
    } else if (!socket || socket.readyState !== WebSocket.CONNECTING) {
      reconnectNow();
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") wake();
  });
  window.addEventListener("online", wake);
  window.addEventListener("offline", () => onStatus("offline", {}));
  // A jump of the clock between ticks means the machine slept. (Hidden tabs' timers are
  // throttled: those wake through visibilitychange instead.)
  let lastTick = Date.now();
  setInterval(() => {
    const now = Date.now();
    if (now - lastTick > 5000 && document.visibilityState === "visible") wake();
    lastTick = now;
  }, 1000);

  open();
  return { reconnectNow, wake };
}
