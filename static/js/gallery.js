// LockN Gen gallery: the generation form, the grid of the user's generations (paged with the
// API's nextCursor), and live progress over /api/ws/progress. Plain JS, no build step.
//
// Every card keeps the generation's JSON and the seq of the last message applied to it: a
// message (or a re-fetched JSON) with a seq not above it is stale and ignored. After any
// reconnect (or a wake from sleep) the page re-fetches the first list page and every card that
// was still active, so it shows the truth even for generations that finished meanwhile.
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("gallery-config").textContent);
  const ACTIVE = new Set(["queued", "running"]);
  const STATUS_LABEL = {
    queued: "Queued",
    running: "Running",
    completed: "Completed",
    failed: "Failed",
    cancelled: "Cancelled",
  };
  const PING_EVERY_MS = 15000;
  const PONG_WITHIN_MS = 10000;
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 30000;

  const $ = (selector, root = document) => root.querySelector(selector);
  const grid = $("#grid");
  const template = $("#card-template");
  const form = $("#generate-form");
  const viewer = $("#viewer");

  /** id -> {gen, el, refs} */
  const cards = new Map();
  /** id -> messages that arrived while the generation's JSON was being fetched */
  const pending = new Map();
  /** ids we will not fetch again (deleted, or not ours) */
  const ignored = new Set();
  let nextCursor = null;
  let listLoaded = false;
  let loadingPage = false;

  // ------------------------------------------------------------------ HTTP

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    const response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch {
        data = null;
      }
    }
    if (response.status === 401) goToLogin();
    return { ok: response.ok, status: response.status, data, headers: response.headers };
  }

  function goToLogin() {
    window.location.assign(config.loginUrl);
  }

  // ------------------------------------------------------------------ formatting

  function formatDuration(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function parseTime(value) {
    const t = value ? Date.parse(value) : NaN;
    return Number.isNaN(t) ? null : t;
  }

  function workflowNodes(gen) {
    const workflow = gen.workflow && typeof gen.workflow === "object" ? gen.workflow : {};
    return Object.values(workflow).filter((node) => node && typeof node === "object");
  }

  /** The text to show for a generation: its prompt, else what its graph says. */
  function promptOf(gen) {
    const params = gen.params || {};
    if (typeof params.prompt === "string" && params.prompt.trim()) return params.prompt;
    const nodes = workflowNodes(gen);
    const encoder = nodes.find(
      (n) => n.class_type === "CLIPTextEncode" && typeof (n.inputs || {}).text === "string",
    );
    if (encoder) return encoder.inputs.text;
    const classes = nodes.map((n) => n.class_type).filter(Boolean);
    return classes.length ? `Custom workflow: ${classes.join(" → ")}` : "Custom workflow";
  }

  /** ComfyUI's error ("<node class> failed: <exception>") in words a user understands. */
  function describeError(error) {
    if (!error) return { summary: "The generation failed for an unknown reason.", detail: "" };
    const match = /^([\w .:-]{1,80}?) failed: ([\s\S]*)$/.exec(error);
    const node = match ? match[1] : null;
    const detail = match ? match[2] : error;
    let summary;
    if (/out of memory|\boom\b|alloc/i.test(detail)) {
      summary = "The GPU ran out of memory. Try a smaller size or fewer steps.";
    } else if (/interrupt/i.test(detail)) {
      summary = "The generation was stopped on the image server.";
    } else if (/lost|unreachable|disconnect|connection/i.test(error)) {
      summary = "We lost contact with the image server while this was running.";
    } else if (/ckpt|checkpoint|model .*not found|no such file/i.test(detail)) {
      summary = "A model this generation needs is missing on the image server.";
    } else if (node) {
      summary = `Something went wrong in the ${node} step.`;
    } else {
      summary = "Something went wrong while generating.";
    }
    return { summary, detail };
  }

  // ------------------------------------------------------------------ cards

  function createCard(gen) {
    const el = template.content.firstElementChild.cloneNode(true);
    el.id = `gen-${gen.id}`;
    el.dataset.id = gen.id;
    const refs = {
      placeholder: $(".card-placeholder", el),
      preview: $(".card-preview", el),
      open: $(".card-open", el),
      output: $(".card-output", el),
      status: $(".card-status", el),
      queue: $(".card-queue", el),
      prompt: $(".card-prompt", el),
      bar: $(".progress", el),
      fill: $(".progress-fill", el),
      percent: $(".card-percent", el),
      node: $(".card-node", el),
      elapsed: $(".card-elapsed", el),
      eta: $(".card-eta", el),
      message: $(".card-message", el),
      cancel: $(".card-cancel", el),
      view: $(".card-view", el),
      del: $(".card-delete", el),
    };
    refs.prompt.id = `gen-${gen.id}-prompt`;
    el.setAttribute("aria-labelledby", refs.prompt.id);

    const card = { gen, el, refs, shownPreview: null, deleteArmed: null };
    refs.preview.addEventListener("error", () => {
      card.shownPreview = null;
      render(card);
    });
    refs.cancel.addEventListener("click", () => cancelGeneration(card));
    refs.open.addEventListener("click", () => openViewer(card, refs.open));
    refs.view.addEventListener("click", () => openViewer(card, refs.view));
    refs.del.addEventListener("click", () => armOrDelete(card, refs.del));
    return card;
  }

  function activityLabel(activity) {
    const text = String(activity);
    return `${text.charAt(0).toUpperCase()}${text.slice(1)}…`;
  }

  function render(card) {
    const { gen, el, refs } = card;
    const status = gen.status || "queued";
    const active = ACTIVE.has(status);
    const progress = Math.max(0, Math.min(100, Math.round(Number(gen.progress) || 0)));
    const prompt = promptOf(gen);

    el.dataset.status = status;
    refs.status.textContent = STATUS_LABEL[status] || status;
    refs.prompt.textContent = prompt;
    refs.prompt.title = prompt;
    refs.bar.setAttribute("aria-label", `Progress: ${prompt.slice(0, 80)}`);

    refs.fill.style.width = `${progress}%`;
    refs.bar.setAttribute("aria-valuenow", String(progress));
    refs.percent.textContent = `${progress}%`;

    let nodeText = "";
    if (status === "queued") {
      nodeText =
        gen.queuePosition != null ? `Queued · position ${gen.queuePosition}` : "Waiting to start";
    } else if (status === "running") {
      nodeText = gen.currentNode || "Starting";
      if (gen.step != null && gen.totalSteps) nodeText += ` · step ${gen.step} / ${gen.totalSteps}`;
      // Newer ComfyUI says what a node does before its first step (e.g. loading a model).
      else if (gen.activity) nodeText += ` · ${activityLabel(gen.activity)}`;
    } else if (status === "completed") {
      const n = (gen.images || []).length;
      nodeText = n > 1 ? `${n} images` : "Done";
    }
    refs.node.textContent = nodeText;
    refs.bar.setAttribute(
      "aria-valuetext",
      `${progress}%${nodeText ? `, ${nodeText}` : ""} (${STATUS_LABEL[status] || status})`,
    );
    refs.queue.hidden = !(status === "queued" && gen.queuePosition != null);
    refs.queue.textContent = `#${gen.queuePosition} in queue`;

    // Media: the output once completed, else the latest preview (kept on failure/cancel).
    const output = status === "completed" ? (gen.images || [])[0] : null;
    if (output) {
      if (refs.output.getAttribute("src") !== output) refs.output.src = output;
      refs.output.alt = prompt;
      refs.open.setAttribute("aria-label", `Open full size: ${prompt}`);
      refs.open.hidden = false;
      refs.preview.hidden = true;
      refs.placeholder.hidden = true;
    } else {
      refs.open.hidden = true;
      if (gen.previewUrl) showPreview(card, gen.previewUrl);
      refs.preview.hidden = !card.shownPreview;
      refs.placeholder.hidden = Boolean(card.shownPreview);
      if (active && !refs.placeholder.querySelector(".spinner")) {
        const spinner = document.createElement("span");
        spinner.className = "spinner";
        refs.placeholder.replaceChildren(spinner);
      } else if (!active) {
        const text = document.createElement("span");
        text.className = "card-placeholder-text";
        text.textContent = STATUS_LABEL[status] || status;
        refs.placeholder.replaceChildren(text);
      }
    }

    let message = "";
    if (status === "failed") {
      const { summary, detail } = describeError(gen.error);
      message = detail && detail !== summary ? `${summary} (${detail})` : summary;
    } else if (status === "cancelled") {
      message = "Cancelled. Nothing was saved.";
    } else if (status === "completed" && !output) {
      message = "Finished, but the image server returned no image.";
    }
    refs.message.textContent = message;
    refs.message.hidden = !message;
    refs.cancel.hidden = !active;
    if (!active && refs.cancel.dataset.busy) delete refs.cancel.dataset.busy;
    const cancelling = Boolean(refs.cancel.dataset.busy || (active && gen.cancelRequested));
    refs.cancel.disabled = cancelling;
    refs.cancel.textContent = cancelling ? "Cancelling…" : "Cancel";
    refs.cancel.setAttribute("aria-label", `Cancel: ${prompt}`);
    refs.view.hidden = !output;
    refs.view.setAttribute("aria-label", `View full size: ${prompt}`);
    const hadFocus = document.activeElement === refs.cancel;
    refs.del.hidden = active;
    if (hadFocus && !active) (output ? refs.view : refs.del).focus();
    updateElapsed(card);
  }

  function showPreview(card, url) {
    const { refs } = card;
    if (url === card.wantedPreview) return;
    card.wantedPreview = url;
    // Load it off-screen first, so the card never flashes an empty image.
    const loader = new Image();
    loader.onload = () => {
      if (card.wantedPreview !== url || card.gen.status === "completed") return;
      refs.preview.src = url;
      refs.preview.hidden = false;
      refs.placeholder.hidden = true;
      card.shownPreview = url;
    };
    loader.src = url;
  }

  function updateElapsed(card, now = Date.now()) {
    const { gen, refs } = card;
    const eta = etaText(card, now);
    refs.eta.textContent = eta;
    refs.eta.hidden = !eta;
    const start = parseTime(gen.createdAt);
    if (start == null) {
      refs.elapsed.textContent = "";
      return;
    }
    if (ACTIVE.has(gen.status)) {
      refs.elapsed.textContent = formatDuration(now - start);
      refs.elapsed.title = "Elapsed time";
    } else {
      const end = parseTime(gen.finishedAt) ?? parseTime(gen.updatedAt);
      refs.elapsed.textContent = end != null ? `took ${formatDuration(end - start)}` : "";
      refs.elapsed.title = "Total time";
    }
  }

  /** Insert newest first (by createdAt), whatever order the JSON arrives in. */
  function place(card) {
    const t = parseTime(card.gen.createdAt) ?? Date.now();
    for (const other of grid.children) {
      const o = cards.get(other.dataset.id);
      const ot = o ? (parseTime(o.gen.createdAt) ?? 0) : 0;
      if (o && ot < t) {
        grid.insertBefore(card.el, other);
        return;
      }
    }
    grid.append(card.el);
  }

  /** Take a generation's JSON from the API: add its card or bring it up to date. */
  function upsert(gen) {
    if (!gen || !gen.id) return null;
    // Staff hear everyone's generations on the socket; the gallery is the user's own.
    if (gen.owner && config.username && gen.owner !== config.username) return null;
    ignored.delete(gen.id);
    let card = cards.get(gen.id);
    if (!card) {
      card = createCard({ ...gen, seq: Number(gen.seq) || 0 });
      card.etaAt = Date.now();
      cards.set(gen.id, card);
      place(card);
    } else if ((Number(gen.seq) || 0) >= card.gen.seq) {
      card.gen = { ...card.gen, ...gen, seq: Number(gen.seq) || 0 };
      card.etaAt = Date.now();
    } else {
      // Older than what the socket already told us: keep the live state, take what only
      // the JSON has.
      for (const key of ["params", "workflow", "createdAt", "finishedAt", "updatedAt"]) {
        if (gen[key] != null && card.gen[key] == null) card.gen[key] = gen[key];
      }
    }
    render(card);
    updateSummary();
    return card;
  }

  function removeCard(id) {
    const card = cards.get(id);
    if (!card) return;
    cards.delete(id);
    ignored.add(id);
    card.el.remove();
    updateSummary();
  }

  function updateSummary() {
    let active = 0;
    for (const card of cards.values()) if (ACTIVE.has(card.gen.status)) active += 1;
    $("#gallery-count").textContent = active ? `${active} in progress` : "";
    $("#gallery-empty").hidden = !listLoaded || cards.size > 0;
    updateTab();
  }

  // ------------------------------------------------------------------ time left, tab, notifications

  const BASE_TITLE = document.title;
  const iconLink = document.querySelector('link[rel="icon"]');
  const BASE_ICON = iconLink ? iconLink.getAttribute("href") : "";
  const NOTIFY_KEY = "lockngen.notify";
  const notifyButton = $("#notify-toggle");
  let shownIconPercent = null;
  // This browser's clock minus the server's, plus the least delivery delay seen so far.
  let clockOffsetMs = Infinity;

  /** When, on this browser's clock, the server built a message: its timestamp shifted by the
   * smallest arrival delay seen, so an estimate that arrived late counts down from when it was
   * made, not from when it came. */
  function madeAt(message) {
    const sent = parseTime(message.timestamp);
    if (sent == null) return Date.now();
    clockOffsetMs = Math.min(clockOffsetMs, Date.now() - sent);
    return sent + clockOffsetMs;
  }

  /** Estimates are rough and say so: "~12 s", "~3 min". */
  function formatEta(seconds) {
    if (seconds < 60) return `~${Math.max(1, Math.round(seconds))} s`;
    return `~${Math.round(seconds / 60)} min`;
  }

  /** The card's estimate, counted down since it arrived: a changed estimate alone sends no
   * message, so the page keeps the clock running between messages. */
  function etaText(card, now = Date.now()) {
    const { gen } = card;
    const since = (now - (card.etaAt || now)) / 1000;
    if (gen.status === "running" && gen.etaSeconds != null) {
      return `${formatEta(Math.max(0, gen.etaSeconds - since))} left`;
    }
    if (gen.status === "queued" && gen.startsInSeconds != null) {
      return `starts in ${formatEta(Math.max(0, gen.startsInSeconds - since))}`;
    }
    return "";
  }

  /** The user's oldest running generation: the one the tab title and favicon follow. */
  function leadingRunning() {
    let lead = null;
    for (const card of cards.values()) {
      if (card.gen.status !== "running") continue;
      const t = parseTime(card.gen.createdAt) ?? 0;
      if (!lead || t < (parseTime(lead.gen.createdAt) ?? 0)) lead = card;
    }
    return lead;
  }

  function updateTab() {
    const lead = leadingRunning();
    if (!lead) {
      document.title = BASE_TITLE;
      setIcon(BASE_ICON, null);
      return;
    }
    const percent = Math.max(0, Math.min(100, Math.round(Number(lead.gen.progress) || 0)));
    document.title = `${percent}% · LockN Gen`;
    if (percent !== shownIconPercent) setIcon(progressIcon(percent), percent);
  }

  /** A 32 px icon: the brand square with a ring that fills as the generation runs. */
  function progressIcon(percent) {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 32;
    const ctx = canvas.getContext("2d");
    if (!ctx) return BASE_ICON;
    ctx.fillStyle = "#7c5cff";
    ctx.beginPath();
    ctx.arc(16, 16, 16, 0, 2 * Math.PI);
    ctx.fill();
    ctx.lineWidth = 5;
    ctx.strokeStyle = "rgba(255,255,255,0.3)";
    ctx.beginPath();
    ctx.arc(16, 16, 11, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.strokeStyle = "#ffffff";
    ctx.beginPath();
    ctx.arc(16, 16, 11, -Math.PI / 2, -Math.PI / 2 + (2 * Math.PI * percent) / 100);
    ctx.stroke();
    return canvas.toDataURL("image/png");
  }

  function setIcon(href, percent) {
    shownIconPercent = percent;
    if (iconLink && href && iconLink.getAttribute("href") !== href) iconLink.setAttribute("href", href);
  }

  function notificationsOn() {
    return (
      "Notification" in window &&
      Notification.permission === "granted" &&
      localStorage.getItem(NOTIFY_KEY) === "on"
    );
  }

  function renderNotifyButton() {
    notifyButton.hidden = !("Notification" in window);
    const on = notificationsOn();
    notifyButton.textContent = on ? "Notifications on" : "Notify me";
    notifyButton.setAttribute("aria-pressed", String(on));
  }

  /** Opt-in: the browser's permission is asked for only once the user clicks. */
  async function toggleNotifications() {
    if (notificationsOn()) {
      localStorage.setItem(NOTIFY_KEY, "off");
    } else {
      const permission =
        Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      if (permission === "granted") localStorage.setItem(NOTIFY_KEY, "on");
      else toast("Notifications are blocked for this site in the browser's settings.");
    }
    renderNotifyButton();
  }

  /** One of the user's generations ended while the tab is hidden: tell the desktop. */
  function notifyEnd(card) {
    if (!document.hidden || !notificationsOn()) return;
    const { gen } = card;
    const prompt = promptOf(gen).slice(0, 80);
    const image = (gen.images || [])[0];
    if (gen.status === "completed") {
      const icon = image ? new URL(image, location.href).href : undefined;
      new Notification(`Done: ${prompt}`, { body: "Your image is ready.", icon, tag: gen.id });
    } else if (gen.status === "failed") {
      new Notification(`Failed: ${prompt}`, { body: gen.error || "It failed.", tag: gen.id });
    }
  }

  notifyButton.addEventListener("click", toggleNotifications);
  renderNotifyButton();

  // ------------------------------------------------------------------ live messages

  function applyMessage(message) {
    const id = message.generationId;
    const seq = Number(message.seq);
    if (typeof id !== "string" || !Number.isFinite(seq)) return;
    const card = cards.get(id);
    if (!card) {
      fetchUnknown(id, message);
      return;
    }
    if (seq <= card.gen.seq) return;
    const data = message.data && typeof message.data === "object" ? message.data : {};
    const wasActive = ACTIVE.has(card.gen.status);
    card.gen = { ...card.gen, ...data, seq };
    card.etaAt = madeAt(message);
    if (!ACTIVE.has(card.gen.status) && !card.gen.finishedAt && message.timestamp) {
      card.gen.finishedAt = message.timestamp;
    }
    render(card);
    updateSummary();
    if (wasActive && !ACTIVE.has(card.gen.status)) notifyEnd(card);
    if (card.gen.status === "completed" && !(card.gen.images || []).length) refresh(id);
  }

  /** A message for a generation that is not on the page (made in another tab): fetch it. */
  async function fetchUnknown(id, message) {
    if (ignored.has(id)) return;
    if (pending.has(id)) {
      pending.get(id).push(message);
      return;
    }
    pending.set(id, [message]);
    try {
      const response = await api(`${config.apiBase}/${encodeURIComponent(id)}`);
      const held = pending.get(id) || [];
      pending.delete(id);
      if (!response.ok || !response.data) {
        if (response.status === 404 || response.status === 403) ignored.add(id);
        return;
      }
      if (!upsert(response.data)) {
        ignored.add(id); // someone else's (a staff user hears every generation)
        return;
      }
      held.sort((a, b) => a.seq - b.seq).forEach(applyMessage);
    } catch {
      pending.delete(id); // the next message will try again
    }
  }

  async function refresh(id) {
    try {
      const response = await api(`${config.apiBase}/${encodeURIComponent(id)}`);
      if (response.ok && response.data) upsert(response.data);
      else if (response.status === 404) removeCard(id);
    } catch {
      /* the next resync will try again */
    }
  }

  // ------------------------------------------------------------------ list and paging

  async function loadPage(cursor) {
    const params = new URLSearchParams({ limit: String(config.pageSize), owner: "me" });
    if (cursor) params.set("cursor", cursor);
    const response = await api(`${config.apiBase}?${params}`);
    if (!response.ok || !response.data) throw new Error(`list failed (${response.status})`);
    for (const gen of response.data.results || []) upsert(gen);
    return response.data;
  }

  async function loadMore() {
    if (loadingPage || (listLoaded && !nextCursor)) return;
    loadingPage = true;
    const status = $("#list-status");
    status.textContent = "Loading…";
    try {
      const page = await loadPage(listLoaded ? nextCursor : null);
      nextCursor = page.nextCursor || null;
      listLoaded = true;
      status.textContent = "";
    } catch {
      status.textContent = "Could not load your generations. Retrying shortly…";
      setTimeout(loadMore, 3000);
    } finally {
      loadingPage = false;
    }
    $("#load-more").hidden = !nextCursor;
    updateSummary();
    // Still at the bottom (a tall screen): keep filling.
    const sentinel = $("#sentinel").getBoundingClientRect();
    if (nextCursor && sentinel.top < window.innerHeight + 600) loadMore();
  }

  /**
   * On every (re)connect: ask the server for what each unfinished card missed since the seq
   * it shows ({"type": "resume"}); it replays those messages, or sends a snapshot when its log
   * no longer reaches back. Sent a few per second: the server refuses floods.
   */
  function resumeAll(ws) {
    const pending = [...cards.values()]
      .filter((c) => ACTIVE.has(c.gen.status) && c.gen.seq > 0)
      .map((c) => ({ type: "resume", generationId: c.gen.id, afterSeq: c.gen.seq }));
    const sendSome = () => {
      if (ws !== socket || ws.readyState !== WebSocket.OPEN) return;
      pending.splice(0, RESUMES_PER_SECOND).forEach((frame) => ws.send(JSON.stringify(frame)));
      if (pending.length) setTimeout(sendSome, 1000);
    };
    sendSome();
  }

  /** After a reconnect or a wake: the first page, and every card that was still active. */
  async function resync() {
    try {
      const page = await loadPage(null);
      if (!listLoaded) {
        nextCursor = page.nextCursor || null;
        listLoaded = true;
        $("#load-more").hidden = !nextCursor;
      }
      const seen = new Set((page.results || []).map((gen) => gen.id));
      const stale = [...cards.values()].filter(
        (c) => ACTIVE.has(c.gen.status) && !seen.has(c.gen.id),
      );
      await Promise.all(stale.map((c) => refresh(c.gen.id)));
      updateSummary();
    } catch {
      /* the socket's next reconnect resyncs again */
    }
  }

  // ------------------------------------------------------------------ the socket

  const connection = $("#connection");
  let socket = null;
  let attempt = 0;
  let everConnected = false;
  let reconnectTimer = null;
  let heartbeatTimer = null;
  const RESUMES_PER_SECOND = 15;
  let lastHeard = 0;
  let pingSentAt = 0;

  function setConnection(state, text) {
    connection.dataset.state = state;
    $(".connection-text", connection).textContent = text;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    setConnection(
      everConnected ? "reconnecting" : "connecting",
      everConnected ? "Reconnecting…" : "Connecting…",
    );
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${window.location.host}${config.wsPath}`);
    } catch {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.addEventListener("open", () => {
      if (ws !== socket) return;
      attempt = 0;
      everConnected = true;
      lastHeard = Date.now();
      setConnection("connected", "Live");
      startHeartbeat();
      resumeAll(ws);
      resync();
    });
    ws.addEventListener("message", (event) => {
      if (ws !== socket) return;
      lastHeard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!message || typeof message.type !== "string") return;
      if (message.type.startsWith("generation.")) applyMessage(message);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== socket) return;
      socket = null;
      stopHeartbeat();
      if (event.code === 4401) {
        setConnection("offline", "Signed out");
        goToLogin();
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    clearTimeout(reconnectTimer);
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
    attempt += 1;
    const jittered = delay * (0.75 + Math.random() * 0.5);
    setConnection(
      navigator.onLine === false ? "offline" : "reconnecting",
      navigator.onLine === false ? "Offline — retrying…" : "Reconnecting…",
    );
    reconnectTimer = setTimeout(connect, jittered);
  }

  /** Drop a socket that may be dead (sleep, network change) and connect again now. */
  function reconnectNow() {
    const old = socket;
    socket = null;
    stopHeartbeat();
    if (old) {
      try {
        old.close(4000, "reconnecting");
      } catch {
        /* already closed */
      }
    }
    attempt = 0;
    connect();
  }

  /** A ping every so often; a socket that does not answer one in time is dead. (Measured from
   * the ping, so a background tab's throttled timers do not make a live socket look dead.) */
  function startHeartbeat() {
    stopHeartbeat();
    pingSentAt = 0;
    heartbeatTimer = setInterval(() => {
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      const now = Date.now();
      if (pingSentAt && lastHeard < pingSentAt) {
        if (now - pingSentAt > PONG_WITHIN_MS) reconnectNow();
        return;
      }
      socket.send('{"type":"ping"}');
      pingSentAt = now;
    }, PING_EVERY_MS);
  }

  function stopHeartbeat() {
    clearInterval(heartbeatTimer);
    heartbeatTimer = null;
  }

  /** Back from sleep or offline: check the socket at once instead of waiting for the timers. */
  function wake() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      const sentAt = Date.now();
      socket.send('{"type":"ping"}');
      setTimeout(() => {
        if (socket && lastHeard < sentAt) reconnectNow();
      }, PONG_WITHIN_MS / 2);
      resync();
    } else if (!socket || socket.readyState !== WebSocket.CONNECTING) {
      reconnectNow();
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") wake();
  });
  window.addEventListener("online", wake);
  window.addEventListener("offline", () => setConnection("offline", "Offline"));

  // Elapsed times tick; a jump of the clock between ticks means the machine slept.
  let lastTick = Date.now();
  setInterval(() => {
    const now = Date.now();
    for (const card of cards.values()) if (ACTIVE.has(card.gen.status)) updateElapsed(card, now);
    // (Hidden tabs' timers are throttled: those wake through visibilitychange instead.)
    if (now - lastTick > 5000 && document.visibilityState === "visible") wake();
    lastTick = now;
  }, 1000);

  // ------------------------------------------------------------------ the form

  const fields = ["prompt", "negativePrompt", "width", "height", "steps", "seed"];

  function clearErrors() {
    for (const el of form.querySelectorAll("[data-error-for]")) {
      el.hidden = true;
      el.textContent = "";
    }
    for (const name of fields) form.elements[name].removeAttribute("aria-invalid");
    const formError = $("#form-error");
    formError.hidden = true;
    formError.textContent = "";
  }

  function showError(field, message) {
    const slot = field && form.querySelector(`[data-error-for="${field}"]`);
    if (slot) {
      slot.textContent = message;
      slot.hidden = false;
      form.elements[field].setAttribute("aria-invalid", "true");
      form.elements[field].focus();
    } else {
      const formError = $("#form-error");
      formError.textContent = message;
      formError.hidden = false;
    }
  }

  function readForm() {
    const body = {
      prompt: form.elements.prompt.value.trim(),
      negativePrompt: form.elements.negativePrompt.value.trim(),
    };
    const problems = [];
    for (const name of ["width", "height", "steps", "seed"]) {
      const raw = form.elements[name].value.trim();
      if (raw === "") {
        if (name !== "seed") problems.push([name, "Enter a number."]);
        continue;
      }
      const value = Number(raw);
      if (!Number.isInteger(value)) problems.push([name, "Enter a whole number."]);
      else body[name] = value;
    }
    if (!body.prompt) problems.unshift(["prompt", "Describe the image you want."]);
    return { body, problems };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const { body, problems } = readForm();
    if (problems.length) {
      for (const [field, message] of problems.reverse()) showError(field, message);
      return;
    }
    const button = $("#generate-button");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const response = await api(config.apiBase, { method: "POST", body });
      if (response.status === 201 && response.data) {
        const card = upsert(response.data);
        if (card) card.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
        toast("Generation queued.");
      } else if (response.status === 400) {
        const data = response.data || {};
        showError(fields.includes(data.field) ? data.field : null, data.error || "Invalid request.");
      } else if (response.status === 429) {
        const wait = Number.parseInt(response.headers.get("Retry-After") || "", 10);
        showError(
          null,
          Number.isFinite(wait)
            ? `You are going too fast. Try again in ${wait} second${wait === 1 ? "" : "s"}.`
            : "You are going too fast. Try again in a moment.",
        );
      } else if (response.status === 503) {
        showError(null, "The image server is not reachable right now. Try again in a moment.");
      } else if (response.status === 403) {
        showError(null, "Your session has expired. Reload the page and sign in again.");
      } else {
        const detail = response.data && response.data.error ? `: ${response.data.error}` : "";
        showError(null, `Could not start the generation (${response.status})${detail}`);
      }
    } catch {
      showError(null, "Could not reach LockN Gen. Check your connection and try again.");
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });

  $("#seed-random").addEventListener("click", () => {
    form.elements.seed.value = String(Math.floor(Math.random() * 2 ** 31));
  });

  // ------------------------------------------------------------------ card actions

  let toastTimer = null;
  function toast(text) {
    const el = $("#toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      el.hidden = true;
    }, 3500);
  }

  async function cancelGeneration(card) {
    const button = card.refs.cancel;
    button.dataset.busy = "1";
    render(card);
    try {
      const response = await api(`${config.apiBase}/${card.gen.id}/cancel`, { method: "POST" });
      if (response.ok && response.data) {
        upsert(response.data);
      } else if (response.status === 409) {
        await refresh(card.gen.id); // it finished first
      } else {
        toast((response.data && response.data.error) || "Could not cancel it.");
        delete button.dataset.busy;
        render(card);
      }
    } catch {
      toast("Could not reach LockN Gen to cancel.");
      delete button.dataset.busy;
      render(card);
    }
  }

  /** Delete asks once more on the same button (no blocking confirm dialog). */
  function armOrDelete(card, button) {
    if (card.deleteArmed && card.deleteArmed.button === button) {
      clearTimeout(card.deleteArmed.timer);
      card.deleteArmed = null;
      deleteGeneration(card);
      return;
    }
    const label = button.textContent;
    button.textContent = "Click again to delete";
    button.classList.add("btn-danger-ghost");
    const timer = setTimeout(() => {
      button.textContent = label;
      if (button !== $("#viewer-delete")) button.classList.remove("btn-danger-ghost");
      card.deleteArmed = null;
    }, 4000);
    card.deleteArmed = { button, timer, label };
  }

  async function deleteGeneration(card) {
    const id = card.gen.id;
    try {
      const response = await api(`${config.apiBase}/${id}`, { method: "DELETE" });
      if (response.status === 204 || response.status === 404) {
        if (viewer.open && viewer.dataset.id === id) closeViewer();
        removeCard(id);
        toast("Deleted.");
      } else if (response.status === 409) {
        toast("It is still running: cancel it first.");
        await refresh(id);
      } else {
        toast((response.data && response.data.error) || "Could not delete it.");
      }
    } catch {
      toast("Could not reach LockN Gen to delete.");
    }
    resetDeleteButtons(card);
  }

  function resetDeleteButtons(card) {
    if (card.deleteArmed) clearTimeout(card.deleteArmed.timer);
    card.deleteArmed = null;
    card.refs.del.textContent = "Delete";
    card.refs.del.classList.remove("btn-danger-ghost");
    $("#viewer-delete").textContent = "Delete";
  }

  // ------------------------------------------------------------------ full-size viewer

  let viewerOpener = null;

  function openViewer(card, opener) {
    const { gen } = card;
    const images = gen.images || [];
    if (!images.length) return;
    viewerOpener = opener || null;
    viewer.dataset.id = gen.id;
    const prompt = promptOf(gen);
    const params = gen.params || {};
    $("#viewer-title").textContent = "Generation";
    $("#viewer-prompt").textContent = prompt;
    const negative = $("#viewer-negative");
    negative.textContent = params.negativePrompt ? `Negative: ${params.negativePrompt}` : "";
    negative.hidden = !params.negativePrompt;

    const rows = [];
    if (params.width && params.height) rows.push(["Size", `${params.width} × ${params.height}`]);
    if (params.steps != null) rows.push(["Steps", params.steps]);
    if (params.cfg != null) rows.push(["CFG", params.cfg]);
    if (params.seed != null) rows.push(["Seed", params.seed]);
    if (params.checkpoint) rows.push(["Checkpoint", params.checkpoint]);
    const created = parseTime(gen.createdAt);
    if (created != null) rows.push(["Created", new Date(created).toLocaleString()]);
    const finished = parseTime(gen.finishedAt);
    if (created != null && finished != null) {
      rows.push(["Took", formatDuration(finished - created)]);
    }
    rows.push(["ID", gen.id]);
    const dl = $("#viewer-params");
    dl.replaceChildren();
    for (const [term, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      dl.append(dt, dd);
    }

    const thumbs = $("#viewer-thumbs");
    thumbs.replaceChildren();
    thumbs.hidden = images.length < 2;
    images.forEach((url, index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("aria-label", `Image ${index + 1} of ${images.length}`);
      const img = document.createElement("img");
      img.src = url;
      img.alt = "";
      button.append(img);
      button.addEventListener("click", () => showViewerImage(card, index));
      thumbs.append(button);
    });
    showViewerImage(card, 0);

    const del = $("#viewer-delete");
    del.textContent = "Delete";
    del.onclick = () => armOrDelete(card, del);
    $("#viewer-error").hidden = true;
    viewer.showModal();
    $("#viewer-close").focus();
  }

  function showViewerImage(card, index) {
    const images = card.gen.images || [];
    const url = images[index];
    const img = $("#viewer-img");
    img.src = url;
    img.alt = promptOf(card.gen);
    const download = $("#viewer-download");
    download.href = url;
    const name = decodeURIComponent(new URL(url, window.location.href).pathname.split("/").pop());
    download.setAttribute("download", name || `lockngen-${card.gen.id}.png`);
    [...$("#viewer-thumbs").children].forEach((button, i) => {
      button.setAttribute("aria-current", i === index ? "true" : "false");
    });
  }

  function closeViewer() {
    if (viewer.open) viewer.close();
  }

  viewer.addEventListener("close", () => {
    const card = cards.get(viewer.dataset.id);
    if (card) resetDeleteButtons(card);
    delete viewer.dataset.id;
    if (viewerOpener && viewerOpener.isConnected) viewerOpener.focus();
    viewerOpener = null;
  });
  viewer.addEventListener("click", (event) => {
    if (event.target === viewer) closeViewer(); // the backdrop
  });
  $("#viewer-close").addEventListener("click", closeViewer);

  // ------------------------------------------------------------------ start

  $("#load-more").addEventListener("click", loadMore);
  if ("IntersectionObserver" in window) {
    new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting) && listLoaded && nextCursor) loadMore();
      },
      { rootMargin: "600px 0px" },
    ).observe($("#sentinel"));
  }

  loadMore();
  connect();
})();
