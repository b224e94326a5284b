// The gallery page: the user's generations as cards (paged with the API's nextCursor), kept
// live by live.js. Each change re-renders only the card of the generation that changed.

import { deleteJson, getJson, postJson, whenSignedOut } from "../api.js";
import { STATUS_TEXT, connectLive, createStore, isActive } from "../live.js";
import { createCard, renderCard, tickCard } from "./card.js";
import { madeAt, parseTime } from "./format.js";
import { setUpForm } from "./form.js";
import { notifyEnd, setUpNotifyButton, updateTab } from "./tab.js";
import { closeViewer, openViewer, setUpViewer, viewerShows } from "./viewer.js";

const config = JSON.parse(document.getElementById("gallery-config").textContent);
const $ = (id) => document.getElementById(id);
const grid = $("grid");
/** id -> card */
const cards = new Map();
/** ids whose details (prompt, times) were asked for: messages do not carry them */
const detailsAsked = new Set();
let nextCursor = null;
let listLoaded = false;
let loadingPage = false;
/** The form's request under way (see fetchDetails) */
let creating = Promise.resolve();

const goToLogin = () => window.location.assign(config.loginUrl);
whenSignedOut(goToLogin);

// The owner rides on every message: staff's firehose carries everyone's generations, and the
// gallery is the user's own. (No owner: an install without accounts, all are "ours".)
const ours = (data) => !data.owner || !config.username || data.owner === config.username;
const store = createStore({ accept: ours });
const generationUrl = (id) => `${config.apiBase}/${encodeURIComponent(id)}`;

let toastTimer = null;
function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 3500);
}

// ------------------------------------------------------------------ the grid

const createdAtOf = (gen) => parseTime(gen.createdAt) ?? parseTime(gen.messageAt) ?? Date.now();

/** Newest first (by createdAt), whatever order generations become known in. */
function place(card) {
  const t = createdAtOf(card.gen);
  const before = [...grid.children].find((el) => {
    const other = cards.get(el.dataset.id);
    return other && other !== card && createdAtOf(other.gen) < t;
  });
  // Not moved when already in place: moving an element takes the focus from it.
  if (before) {
    if (before !== card.el.nextElementSibling) grid.insertBefore(card.el, before);
  } else if (grid.lastElementChild !== card.el) {
    grid.append(card.el);
  }
}

function updateSummary() {
  const gens = [...cards.values()].map((card) => card.gen);
  const active = gens.filter((gen) => isActive(gen.status)).length;
  $("gallery-count").textContent = active ? `${active} in progress` : "";
  $("gallery-empty").hidden = !listLoaded || cards.size > 0;
  updateTab(gens);
}

function removeCard(id) {
  const card = cards.get(id);
  if (!card) return;
  cards.delete(id);
  card.el.remove();
  if (viewerShows(id)) closeViewer();
  updateSummary();
}

/** One generation changed in the store: bring its card (only) up to date. */
function onChange(id, change) {
  if (change.kind === "removed") return removeCard(id);
  let card = cards.get(id);
  const gen = store.get(id);
  const moved = !card || card.gen.createdAt !== gen.createdAt;
  if (!card) {
    card = createCard(gen, { cancel: cancelGeneration, view: openViewer, remove: armOrDelete });
    cards.set(id, card);
  }
  if (change.kind === "message" && !gen.createdAt) fetchDetails(id); // made in another tab
  card.gen = gen;
  if (change.kind === "message") card.etaAt = madeAt(change.message);
  else if (change.fresh) card.etaAt = Date.now();
  if (moved) place(card);
  renderCard(card);
  updateSummary();
  const ended = change.previous && isActive(change.previous.status) && !isActive(gen.status);
  if (change.kind !== "message") return;
  if (ended) notifyEnd(gen);
  if (gen.status === "completed" && !(gen.images || []).length) refresh(id); // images follow
}

store.subscribe(onChange);

/** The prompt and times of a generation first heard of on the socket. Its first message
 * often beats the answer to this page's own POST: that answer has them, so wait for it. */
async function fetchDetails(id) {
  if (detailsAsked.has(id)) return;
  detailsAsked.add(id);
  await creating;
  if (!store.get(id) || store.get(id).createdAt) return;
  if (!(await refresh(id))) detailsAsked.delete(id); // the next message tries again
}

async function refresh(id) {
  try {
    const response = await getJson(generationUrl(id));
    if (response.ok && response.data) store.put(response.data);
    else if (response.status === 404) store.forget(id);
    return response.ok || response.status === 404;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ list and paging

async function loadPage(cursor) {
  const params = new URLSearchParams({ limit: String(config.pageSize), owner: "me" });
  if (cursor) params.set("cursor", cursor);
  const response = await getJson(`${config.apiBase}?${params}`);
  if (!response.ok || !response.data) throw new Error(`list failed (${response.status})`);
  for (const gen of response.data.results || []) store.put(gen);
  return response.data;
}

function pageLoaded(page) {
  nextCursor = page.nextCursor || null;
  listLoaded = true;
  $("load-more").hidden = !nextCursor;
}

async function loadMore() {
  if (loadingPage || (listLoaded && !nextCursor)) return;
  loadingPage = true;
  const status = $("list-status");
  status.textContent = "Loading…";
  try {
    pageLoaded(await loadPage(listLoaded ? nextCursor : null));
    status.textContent = "";
  } catch {
    status.textContent = "Could not load your generations. Retrying shortly…";
    setTimeout(loadMore, 3000);
  } finally {
    loadingPage = false;
  }
  updateSummary();
  // Still at the bottom (a tall screen): keep filling.
  if (nextCursor && $("sentinel").getBoundingClientRect().top < window.innerHeight + 600) {
    loadMore();
  }
}

/** After a reconnect: the first page again, for generations made elsewhere meanwhile (the
 * socket's resume catches up the ones already shown). */
async function relist() {
  try {
    const page = await loadPage(null);
    if (!listLoaded) pageLoaded(page);
    updateSummary();
  } catch {
    /* the next reconnect lists again */
  }
}

// ------------------------------------------------------------------ card actions

async function cancelGeneration(card) {
  const id = card.gen.id;
  card.refs.cancel.dataset.busy = "1";
  renderCard(card);
  const failed = (text) => {
    toast(text);
    delete card.refs.cancel.dataset.busy;
    renderCard(card);
  };
  try {
    const response = await postJson(`${generationUrl(id)}/cancel`);
    if (response.ok && response.data) store.put(response.data);
    else if (response.status === 409) await refresh(id); // it finished first
    else failed(response.error || "Could not cancel it.");
  } catch {
    failed("Could not reach LockN Gen to cancel.");
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
    if (button !== $("viewer-delete")) button.classList.remove("btn-danger-ghost");
    card.deleteArmed = null;
  }, 4000);
  card.deleteArmed = { button, timer };
}

async function deleteGeneration(card) {
  const id = card.gen.id;
  try {
    const response = await deleteJson(generationUrl(id));
    if (response.status === 204 || response.status === 404) {
      store.forget(id);
      toast("Deleted.");
    } else if (response.status === 409) {
      toast("It is still running: cancel it first.");
      await refresh(id);
    } else {
      toast(response.error || "Could not delete it.");
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
  $("viewer-delete").textContent = "Delete";
}

// ------------------------------------------------------------------ the connection

/** A problem the user can act on, said in words above the grid until it is over. */
function showLiveAlert(text) {
  const el = $("live-alert");
  el.textContent = text;
  el.hidden = !text;
}

function onStatus(status, detail) {
  const [state, text] = STATUS_TEXT[status] || STATUS_TEXT.reconnecting;
  const connection = $("connection");
  connection.dataset.state = state;
  connection.querySelector(".connection-text").textContent = text;
  if (status === "too-many") {
    const seconds = Math.round(detail.retryInMs / 1000);
    showLiveAlert(
      "Live updates are paused: too many LockN Gen tabs or windows are open for your " +
        `account. Close one; this page tries again in ${seconds} s.`,
    );
  } else if (status === "connected") {
    showLiveAlert("");
    if (detail.resumed) relist();
  } else if (status === "signed-out") {
    goToLogin();
  }
}

// ------------------------------------------------------------------ start

setUpForm($("generate-form"), config.apiBase, {
  created(gen) {
    store.put(gen);
    const card = cards.get(gen.id);
    if (card) card.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
    toast("Generation queued.");
  },
  submitting(request) {
    creating = request.catch(() => {});
  },
});
setUpViewer({
  remove: armOrDelete,
  closed: (id) => cards.has(id) && resetDeleteButtons(cards.get(id)),
});
setUpNotifyButton($("notify-toggle"), toast);
$("load-more").addEventListener("click", loadMore);
if ("IntersectionObserver" in window) {
  new IntersectionObserver(
    (entries) => {
      if (entries.some((e) => e.isIntersecting) && listLoaded && nextCursor) loadMore();
    },
    { rootMargin: "600px 0px" },
  ).observe($("sentinel"));
}
// Elapsed times and estimates tick between messages.
setInterval(() => {
  const now = Date.now();
  for (const card of cards.values()) if (isActive(card.gen.status)) tickCard(card, now);
}, 1000);

loadMore();
connectLive({ store, path: config.wsPath, onStatus });
