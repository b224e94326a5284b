// The admin's "Active generations" page: every user's queued and running generations, kept
// live by live.js on the firehose (staff hear everyone's). The staff-only JSON list, polled
// and re-read on every connect, adds what messages do not carry (the ComfyUI prompt id, the
// admin link, the creation time) and drops rows that ended unheard. Only changed rows render.

import { getJson, postJson, whenSignedOut } from "../api.js";
import { STATUS_TEXT, connectLive, createStore, isActive } from "../live.js";
import { createRow, renderRow, tickRow } from "./row.js";

const config = JSON.parse(document.getElementById("active-config").textContent);
const POLL_MS = 5000;
const LEAVE_AFTER_MS = 1200;
const tbody = document.getElementById("active-rows");
/** id -> row */
const rows = new Map();
// Only generations that can still change are new rows; ended ones just leave.
const store = createStore({ accept: (data) => isActive(data.status) });
whenSignedOut(() => window.location.reload()); // the admin shows its own login page

// What stops live updates (over the socket cap) stays said until it is over.
let liveProblem = "";

/** A problem of the moment, else the live one, else nothing. */
function showMessage(text) {
  const el = document.getElementById("active-message");
  el.textContent = text || liveProblem;
  el.hidden = !el.textContent;
}

// ------------------------------------------------------------------ rows

const createdAt = (row) => Date.parse(row.data.createdAt || "") || 0;

/** Newest first; a row first heard of on the socket is new, so it goes on top. */
function place(row) {
  const t = createdAt(row) || Date.now();
  const before = [...tbody.children].find((tr) => {
    const other = rows.get(tr.dataset.id);
    return other && other !== row && createdAt(other) < t;
  });
  if (before) {
    if (before !== row.tr.nextElementSibling) tbody.insertBefore(row.tr, before);
  } else if (tbody.lastElementChild !== row.tr) {
    tbody.append(row.tr);
  }
}

/** A row that ended stays a moment (showing how it ended), then goes. */
function leave(row) {
  if (row.leaving) return;
  row.tr.classList.add("lng-leaving");
  row.leaving = setTimeout(() => store.forget(row.data.id), LEAVE_AFTER_MS);
}

function dropRow(id) {
  const row = rows.get(id);
  if (!row) return;
  clearTimeout(row.leaving);
  rows.delete(id);
  row.tr.remove();
  updateSummary();
}

function updateSummary() {
  const live = [...rows.values()].filter((r) => isActive(r.data.status));
  const running = live.filter((r) => r.data.status === "running").length;
  document.getElementById("active-count").textContent =
    `${running} running, ${live.length - running} queued`;
  let empty = tbody.querySelector(".lng-empty");
  if (rows.size === 0 && !empty) {
    empty = document.createElement("tr");
    empty.className = "lng-empty";
    const td = document.createElement("td");
    td.colSpan = 8;
    td.textContent = "No queued or running generations.";
    empty.append(td);
    tbody.append(empty);
  } else if (rows.size > 0 && empty) {
    empty.remove();
  }
}

/** One generation changed in the store: bring its row (only) up to date. */
function onChange(id, change) {
  if (change.kind === "removed") return dropRow(id);
  const data = store.get(id);
  let row = rows.get(id);
  if (!row) {
    row = createRow(data, config.canCancel ? cancel : null);
    row.addedAt = Date.now();
    rows.set(id, row);
  }
  const moved = row.data.createdAt !== data.createdAt || !row.tr.parentNode;
  row.data = data;
  if (moved) place(row);
  renderRow(row);
  if (!isActive(data.status)) leave(row);
  else if (!data.promptId && !row.listed) {
    row.listed = true; // asked once: the list has its prompt id
    poll();
  }
  updateSummary();
}

store.subscribe(onChange);

// ------------------------------------------------------------------ the list

let polling = false;
let pollAgain = false;

async function readList(started) {
  const response = await getJson(config.jsonUrl);
  if (response.redirected || response.status === 401 || response.status === 403) {
    window.location.reload(); // signed out: the admin shows its login page
    return;
  }
  if (!response.ok || !response.data) throw new Error(String(response.status));
  const seen = new Set();
  for (const data of response.data.results || []) {
    seen.add(data.id);
    store.put(data);
  }
  // Gone from the list: ended (or deleted) while we were not told.
  for (const row of rows.values()) {
    if (!seen.has(row.data.id) && row.addedAt < started) leave(row);
  }
}

/** Read the list now, or once more right after the read under way. */
async function poll() {
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  try {
    await readList(Date.now());
    showMessage("");
  } catch {
    showMessage("Could not refresh the list; retrying.");
  } finally {
    polling = false;
    updateSummary();
    if (pollAgain) {
      pollAgain = false;
      poll();
    }
  }
}

async function cancel(row) {
  const id = row.data.id;
  row.button.dataset.busy = "1";
  renderRow(row);
  try {
    const response = await postJson(`${config.apiBase}/${encodeURIComponent(id)}/cancel`);
    if (response.status === 202 && response.data) {
      store.put(response.data);
      showMessage("");
    } else if (response.status === 409) {
      poll(); // it ended first
    } else {
      showMessage(response.error || `Cancel failed (${response.status}).`);
    }
  } catch {
    showMessage("Could not reach the server to cancel.");
  } finally {
    delete row.button.dataset.busy;
    if (rows.get(id) === row) renderRow(row);
  }
}

// ------------------------------------------------------------------ the connection

function onStatus(status, detail) {
  const [state, text] = STATUS_TEXT[status] || STATUS_TEXT.reconnecting;
  const connection = document.getElementById("active-connection");
  connection.dataset.state = state;
  connection.querySelector(".lng-conn-text").textContent = text;
  if (status === "connected") {
    liveProblem = "";
    poll();
  } else if (status === "too-many") {
    const seconds = Math.round(detail.retryInMs / 1000);
    liveProblem =
      "Live updates are paused: too many progress sockets are open for your account " +
      `(${detail.why || "over the cap"}). Close a LockN Gen tab; retrying in ${seconds} s.`;
    showMessage("");
  } else if (status === "signed-out") {
    window.location.reload();
  }
}

// ------------------------------------------------------------------ start

for (const data of config.initial || []) store.put(data);
updateSummary();
setInterval(() => {
  const now = Date.now();
  for (const row of rows.values()) tickRow(row, now);
}, 1000);
setInterval(poll, POLL_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") poll();
});
connectLive({ store, path: config.wsPath, onStatus });
