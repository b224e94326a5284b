// The full-size viewer (a modal <dialog>): the images, the request's parameters, download
// and delete. Focus returns to what opened it.

import { formatDuration, parseTime, promptOf } from "./format.js";

const viewer = document.getElementById("viewer");
const $ = (id) => document.getElementById(id);
let opener = null;
let handlers = { remove: () => {}, closed: () => {} };

/** `remove(card, button)` deletes (asking twice); `closed(id)` follows every close. */
export function setUpViewer(callbacks) {
  handlers = callbacks;
  viewer.addEventListener("close", () => {
    const id = viewer.dataset.id;
    delete viewer.dataset.id;
    handlers.closed(id);
    if (opener && opener.isConnected) opener.focus();
    opener = null;
  });
  viewer.addEventListener("click", (event) => {
    if (event.target === viewer) closeViewer(); // the backdrop
  });
  $("viewer-close").addEventListener("click", closeViewer);
}

export const viewerShows = (id) => viewer.open && viewer.dataset.id === id;

export function closeViewer() {
  if (viewer.open) viewer.close();
}

function paramRows(gen) {
  const params = gen.params || {};
  const rows = [];
  if (params.width && params.height) rows.push(["Size", `${params.width} × ${params.height}`]);
  if (params.steps != null) rows.push(["Steps", params.steps]);
  if (params.cfg != null) rows.push(["CFG", params.cfg]);
  if (params.seed != null) rows.push(["Seed", params.seed]);
  if (params.checkpoint) rows.push(["Checkpoint", params.checkpoint]);
  const created = parseTime(gen.createdAt);
  if (created != null) rows.push(["Created", new Date(created).toLocaleString()]);
  const finished = parseTime(gen.finishedAt);
  if (created != null && finished != null) rows.push(["Took", formatDuration(finished - created)]);
  rows.push(["ID", gen.id]);
  return rows;
}

function renderParams(gen) {
  const dl = $("viewer-params");
  dl.replaceChildren();
  for (const [term, value] of paramRows(gen)) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dl.append(dt, dd);
  }
}

function renderThumbs(card, images) {
  const thumbs = $("viewer-thumbs");
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
    button.addEventListener("click", () => showImage(card, index));
    thumbs.append(button);
  });
}

function showImage(card, index) {
  const url = (card.gen.images || [])[index];
  const img = $("viewer-img");
  img.src = url;
  img.alt = promptOf(card.gen);
  const download = $("viewer-download");
  download.href = url;
  const name = decodeURIComponent(new URL(url, window.location.href).pathname.split("/").pop());
  download.setAttribute("download", name || `lockngen-${card.gen.id}.png`);
  [...$("viewer-thumbs").children].forEach((button, i) => {
    button.setAttribute("aria-current", i === index ? "true" : "false");
  });
}

/** Show a completed card's images; `from` gets the focus back on close. */
export function openViewer(card, from) {
  const { gen } = card;
  const images = gen.images || [];
  if (!images.length) return;
  opener = from || null;
  viewer.dataset.id = gen.id;
  const params = gen.params || {};
  $("viewer-title").textContent = "Generation";
  $("viewer-prompt").textContent = promptOf(gen);
  const negative = $("viewer-negative");
  negative.textContent = params.negativePrompt ? `Negative: ${params.negativePrompt}` : "";
  negative.hidden = !params.negativePrompt;
  renderParams(gen);
  renderThumbs(card, images);
  showImage(card, 0);
  const del = $("viewer-delete");
  del.textContent = "Delete";
  del.onclick = () => handlers.remove(card, del);
  $("viewer-error").hidden = true;
  viewer.showModal();
  $("viewer-close").focus();
}
