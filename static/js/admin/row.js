// One row of the admin's "Active generations" table: built once, updated in place.

import { isActive } from "../live.js";

const shortId = (id) => String(id).slice(0, 8);

function formatAge(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

function cell(tr, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  tr.append(td);
  return td;
}

function progressBar(id) {
  const bar = document.createElement("span");
  bar.className = "lng-bar";
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-label", `Progress of ${shortId(id)}`);
  const fill = document.createElement("span");
  fill.className = "lng-fill";
  fill.style.display = "block";
  bar.append(fill);
  return { bar, fill };
}

function cancelButton(onCancel) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button lng-cancel";
  button.textContent = "Cancel";
  button.addEventListener("click", onCancel);
  return button;
}

/** A row for `data`; `onCancel(row)` when it has a Cancel button (staff who may change). */
export function createRow(data, onCancel) {
  const tr = document.createElement("tr");
  tr.dataset.id = data.id;
  const cells = {};
  for (const name of ["id", "owner", "status", "progress", "node", "age", "prompt", "action"]) {
    cells[name] = cell(tr, name === "id" || name === "prompt" ? "mono" : "");
  }
  const link = document.createElement("a");
  link.textContent = shortId(data.id);
  link.title = data.id;
  cells.id.append(link);
  const { bar, fill } = progressBar(data.id);
  const pct = document.createElement("span");
  pct.className = "lng-pct";
  cells.progress.append(bar, " ", pct);
  const row = { data, tr, cells, link, bar, fill, pct, button: null, leaving: null };
  if (onCancel) {
    row.button = cancelButton(() => onCancel(row));
    cells.action.append(row.button);
  }
  return row;
}

function nodeText(d) {
  if (d.status === "queued") {
    return d.queuePosition != null ? `queue position ${d.queuePosition}` : "waiting";
  }
  if (!d.currentNode) return "";
  const step = d.step != null && d.totalSteps ? ` · step ${d.step}/${d.totalSteps}` : "";
  return `${d.currentNode}${step}`;
}

export function renderRow(row) {
  const d = row.data;
  const progress = Math.max(0, Math.min(100, Math.round(Number(d.progress) || 0)));
  row.tr.dataset.status = d.status;
  row.link.href = d.adminUrl || "#";
  row.cells.owner.textContent = d.owner || "—";
  const status = document.createElement("span");
  status.className = `lng-status lng-status-${d.status}`;
  status.textContent = d.cancelRequested && isActive(d.status) ? "cancelling" : d.status;
  row.cells.status.replaceChildren(status);
  row.fill.style.width = `${progress}%`;
  row.bar.setAttribute("aria-valuenow", String(progress));
  row.pct.textContent = `${progress}%`;
  row.cells.node.textContent = nodeText(d) || "—";
  row.cells.prompt.textContent = d.promptId || "";
  if (row.button) {
    row.button.hidden = !isActive(d.status);
    row.button.disabled = Boolean(d.cancelRequested) || row.button.dataset.busy === "1";
    row.button.setAttribute("aria-label", `Cancel generation ${shortId(d.id)}`);
  }
  tickRow(row);
}

/** The age column, which changes with the clock alone. */
export function tickRow(row, now = Date.now()) {
  const created = Date.parse(row.data.createdAt || "");
  row.cells.age.textContent = Number.isNaN(created) ? "" : formatAge(now - created);
}
