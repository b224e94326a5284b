// One generation's card in the grid: built once from #card-template, then brought up to date
// in place whenever its generation changes (never rebuilt).

import { isActive } from "../live.js";
import {
  endMessage,
  etaText,
  formatDuration,
  nodeText,
  parseTime,
  percentOf,
  promptOf,
  statusLabel,
} from "./format.js";

const template = document.getElementById("card-template");
const REFS = {
  placeholder: ".card-placeholder",
  preview: ".card-preview",
  open: ".card-open",
  output: ".card-output",
  status: ".card-status",
  queue: ".card-queue",
  prompt: ".card-prompt",
  bar: ".progress",
  fill: ".progress-fill",
  percent: ".card-percent",
  node: ".card-node",
  elapsed: ".card-elapsed",
  eta: ".card-eta",
  message: ".card-message",
  cancel: ".card-cancel",
  view: ".card-view",
  del: ".card-delete",
};

/**
 * A card for `gen`. `actions` are the page's: cancel(card), view(card, opener),
 * remove(card, button). `card.gen` is the generation's state as last rendered; `card.etaAt`
 * when its estimates were made.
 */
export function createCard(gen, actions) {
  const el = template.content.firstElementChild.cloneNode(true);
  const refs = Object.fromEntries(Object.entries(REFS).map(([k, s]) => [k, el.querySelector(s)]));
  el.id = `gen-${gen.id}`;
  el.dataset.id = gen.id;
  refs.prompt.id = `gen-${gen.id}-prompt`;
  el.setAttribute("aria-labelledby", refs.prompt.id);
  const card = { gen, el, refs, etaAt: Date.now(), shownPreview: null, wantedPreview: null };
  refs.preview.addEventListener("error", () => {
    card.shownPreview = null;
    renderCard(card);
  });
  refs.cancel.addEventListener("click", () => actions.cancel(card));
  refs.open.addEventListener("click", () => actions.view(card, refs.open));
  refs.view.addEventListener("click", () => actions.view(card, refs.view));
  refs.del.addEventListener("click", () => actions.remove(card, refs.del));
  return card;
}

/** The output once completed, else null. */
export const outputOf = (gen) => (gen.status === "completed" ? (gen.images || [])[0] : null);

export function renderCard(card) {
  const prompt = promptOf(card.gen);
  renderStatus(card, prompt);
  renderMedia(card, prompt);
  renderActions(card, prompt);
  tickCard(card);
}

function renderStatus({ gen, el, refs }, prompt) {
  const status = gen.status || "queued";
  const progress = percentOf(gen);
  const node = nodeText(gen);
  el.dataset.status = status;
  refs.status.textContent = statusLabel(status);
  refs.prompt.textContent = prompt;
  refs.prompt.title = prompt;
  refs.bar.setAttribute("aria-label", `Progress: ${prompt.slice(0, 80)}`);
  refs.fill.style.width = `${progress}%`;
  refs.bar.setAttribute("aria-valuenow", String(progress));
  refs.percent.textContent = `${progress}%`;
  refs.node.textContent = node;
  refs.bar.setAttribute(
    "aria-valuetext",
    `${progress}%${node ? `, ${node}` : ""} (${statusLabel(status)})`,
  );
  refs.queue.hidden = !(status === "queued" && gen.queuePosition != null);
  refs.queue.textContent = `#${gen.queuePosition} in queue`;
  const message = endMessage(gen, Boolean(outputOf(gen)));
  refs.message.textContent = message;
  refs.message.hidden = !message;
}

/** The output once completed, else the latest preview (kept on failure or cancel). */
function renderMedia(card, prompt) {
  const { gen, refs } = card;
  const output = outputOf(gen);
  if (output) {
    if (refs.output.getAttribute("src") !== output) refs.output.src = output;
    refs.output.alt = prompt;
    refs.open.setAttribute("aria-label", `Open full size: ${prompt}`);
    refs.open.hidden = false;
    refs.preview.hidden = true;
    refs.placeholder.hidden = true;
    return;
  }
  refs.open.hidden = true;
  if (gen.previewUrl) showPreview(card, gen.previewUrl);
  refs.preview.hidden = !card.shownPreview;
  refs.placeholder.hidden = Boolean(card.shownPreview);
  renderPlaceholder(refs.placeholder, gen.status);
}

function renderPlaceholder(placeholder, status) {
  if (isActive(status)) {
    if (placeholder.querySelector(".spinner")) return;
    const spinner = document.createElement("span");
    spinner.className = "spinner";
    placeholder.replaceChildren(spinner);
    return;
  }
  const text = document.createElement("span");
  text.className = "card-placeholder-text";
  text.textContent = statusLabel(status);
  placeholder.replaceChildren(text);
}

/** Load a preview off-screen first, so the card never flashes an empty image. */
function showPreview(card, url) {
  if (url === card.wantedPreview) return;
  card.wantedPreview = url;
  const loader = new Image();
  loader.onload = () => {
    if (card.wantedPreview !== url || card.gen.status === "completed") return;
    card.refs.preview.src = url;
    card.refs.preview.hidden = false;
    card.refs.placeholder.hidden = true;
    card.shownPreview = url;
  };
  loader.src = url;
}

function renderActions({ gen, refs }, prompt) {
  const active = isActive(gen.status);
  const output = outputOf(gen);
  refs.cancel.hidden = !active;
  if (!active) delete refs.cancel.dataset.busy;
  const cancelling = Boolean(refs.cancel.dataset.busy || (active && gen.cancelRequested));
  refs.cancel.disabled = cancelling;
  refs.cancel.textContent = cancelling ? "Cancelling…" : "Cancel";
  refs.cancel.setAttribute("aria-label", `Cancel: ${prompt}`);
  refs.view.hidden = !output;
  refs.view.setAttribute("aria-label", `View full size: ${prompt}`);
  const hadFocus = document.activeElement === refs.cancel;
  refs.del.hidden = active;
  // The focused Cancel button just went away: keep the keyboard user on the card.
  if (hadFocus && !active) (output ? refs.view : refs.del).focus();
}

/** What changes with the clock alone: elapsed time and the estimate's countdown. */
export function tickCard({ gen, refs, etaAt }, now = Date.now()) {
  const eta = etaText(gen, etaAt, now);
  refs.eta.textContent = eta;
  refs.eta.hidden = !eta;
  const start = parseTime(gen.createdAt);
  if (start == null) {
    refs.elapsed.textContent = "";
  } else if (isActive(gen.status)) {
    refs.elapsed.textContent = formatDuration(now - start);
    refs.elapsed.title = "Elapsed time";
  } else {
    const end = parseTime(gen.finishedAt) ?? parseTime(gen.messageAt) ?? parseTime(gen.updatedAt);
    refs.elapsed.textContent = end != null ? `took ${formatDuration(end - start)}` : "";
    refs.elapsed.title = "Total time";
  }
}
