// Admin "Active generations": queued and running generations of every user, live.
// Staff receive every generation's messages on the /api/ws/progress firehose; the staff-only
// JSON list (polled, and re-read on every reconnect) decides which rows exist.
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("active-config").textContent);
  const ACTIVE = new Set(["queued", "running"]);
  const POLL_MS = 5000;
  const LEAVE_AFTER_MS = 1200;
  const tbody = document.getElementById("active-rows");
  const connection = document.getElementById("active-connection");
  /** id -> {data, tr, cells, leaving} */
  const rows = new Map();

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

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

  function createRow(data) {
    const tr = document.createElement("tr");
    tr.dataset.id = data.id;
    const cells = {
      id: cell(tr, "mono"),
      owner: cell(tr),
      status: cell(tr),
      progress: cell(tr),
      node: cell(tr),
      age: cell(tr),
      prompt: cell(tr, "mono"),
      action: cell(tr),
    };
    const link = document.createElement("a");
    link.href = data.adminUrl || "#";
    link.textContent = String(data.id).slice(0, 8);
    link.title = data.id;
    cells.id.append(link);

    const bar = document.createElement("span");
    bar.className = "lng-bar";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-label", `Progress of ${String(data.id).slice(0, 8)}`);
    const fill = document.createElement("span");
    fill.className = "lng-fill";
    fill.style.display = "block";
    bar.append(fill);
    const pct = document.createElement("span");
    pct.className = "lng-pct";
    cells.progress.append(bar, " ", pct);

    const row = { data, tr, cells, bar, fill, pct, button: null, leaving: null };
    row.addedAt = Date.now();
    if (config.canCancel) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button lng-cancel";
      button.textContent = "Cancel";
      button.addEventListener("click", () => cancel(row));
      cells.action.append(button);
      row.button = button;
    }
    return row;
  }

  function render(row) {
    const d = row.data;
    const progress = Math.max(0, Math.min(100, Math.round(Number(d.progress) || 0)));
    row.tr.dataset.status = d.status;
    row.cells.owner.textContent = d.owner || "—";
    row.cells.status.replaceChildren();
    const status = document.createElement("span");
    status.className = `lng-status lng-status-${d.status}`;
    status.textContent = d.cancelRequested && ACTIVE.has(d.status) ? "cancelling" : d.status;
    row.cells.status.append(status);
    row.fill.style.width = `${progress}%`;
    row.bar.setAttribute("aria-valuenow", String(progress));
    row.pct.textContent = `${progress}%`;
    let node = "";
    if (d.status === "queued") {
      node = d.queuePosition != null ? `queue position ${d.queuePosition}` : "waiting";
    } else if (d.currentNode) {
      node = d.currentNode;
      if (d.step != null && d.totalSteps) node += ` · step ${d.step}/${d.totalSteps}`;
    }
    row.cells.node.textContent = node || "—";
    row.cells.prompt.textContent = d.promptId || "";
    if (row.button) {
      row.button.hidden = !ACTIVE.has(d.status);
      row.button.disabled = Boolean(d.cancelRequested) || row.button.dataset.busy === "1";
      row.button.setAttribute("aria-label", `Cancel generation ${String(d.id).slice(0, 8)}`);
    }
    updateAge(row);
  }

  function updateAge(row, now = Date.now()) {
    const created = Date.parse(row.data.createdAt || "");
    row.cells.age.textContent = Number.isNaN(created) ? "" : formatAge(now - created);
  }

  function place(row) {
    const t = Date.parse(row.data.createdAt || "") || Date.now();
    for (const tr of tbody.children) {
      const other = rows.get(tr.dataset.id);
      if (other && (Date.parse(other.data.createdAt || "") || 0) < t) {
        tbody.insertBefore(row.tr, tr);
        return;
      }
    }
    tbody.append(row.tr);
  }

  function upsert(data) {
    let row = rows.get(data.id);
    if (!row) {
      row = createRow(data);
      rows.set(data.id, row);
      place(row);
    } else if ((Number(data.seq) || 0) >= (Number(row.data.seq) || 0)) {
      row.data = { ...row.data, ...data };
    } else {
      for (const key of ["owner", "promptId", "adminUrl", "createdAt", "cancelRequested"]) {
        if (data[key] != null) row.data[key] = data[key];
      }
    }
    render(row);
    if (!ACTIVE.has(row.data.status)) leave(row);
    updateSummary();
  }

  /** A row that finished stays a moment (showing how it ended), then goes. */
  function leave(row) {
    if (row.leaving) return;
    row.tr.classList.add("lng-leaving");
    row.leaving = setTimeout(() => {
      rows.delete(row.data.id);
      row.tr.remove();
      updateSummary();
    }, LEAVE_AFTER_MS);
  }

  function updateSummary() {
    const live = [...rows.values()].filter((r) => ACTIVE.has(r.data.status));
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

  function showMessage(text) {
    const el = document.getElementById("active-message");
    el.textContent = text || "";
    el.hidden = !text;
  }

  // ------------------------------------------------------------------ the list

  let polling = false;
  let pollAgain = false;
  async function poll() {
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    const started = Date.now();
    try {
      const response = await fetch(config.jsonUrl, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      if (response.redirected || response.status === 401 || response.status === 403) {
        window.location.reload(); // signed out: the admin shows its login page
        return;
      }
      if (!response.ok) throw new Error(String(response.status));
      const { results } = await response.json();
      const seen = new Set();
      for (const data of results) {
        seen.add(data.id);
        upsert(data);
      }
      // Gone from the list: finished (or deleted) while we were not told.
      for (const row of rows.values()) {
        if (!seen.has(row.data.id) && row.addedAt < started) leave(row);
      }
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
    if (!row.button) return;
    row.button.dataset.busy = "1";
    render(row);
    try {
      const response = await fetch(`${config.apiBase}/${encodeURIComponent(row.data.id)}/cancel`, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      });
      const data = await response.json().catch(() => null);
      if (response.status === 202 && data) {
        upsert({ ...data, owner: row.data.owner, promptId: row.data.promptId });
        showMessage("");
      } else if (response.status === 409) {
        poll();
      } else {
        showMessage((data && data.error) || `Cancel failed (${response.status}).`);
      }
    } catch {
      showMessage("Could not reach the server to cancel.");
    } finally {
      delete row.button.dataset.busy;
      render(row);
    }
  }

  // ------------------------------------------------------------------ the firehose

  let socket = null;
  let attempt = 0;
  let timer = null;

  function setConnection(state, text) {
    connection.dataset.state = state;
    connection.querySelector(".lng-conn-text").textContent = text;
  }

  function onMessage(message) {
    if (!message || typeof message.type !== "string" || !message.type.startsWith("generation.")) {
      return;
    }
    const row = rows.get(message.generationId);
    const data = message.data || {};
    if (!row) {
      if (ACTIVE.has(data.status)) poll(); // a new one: the list has its owner and prompt id
      return;
    }
    if (Number(message.seq) <= (Number(row.data.seq) || 0)) return;
    row.data = { ...row.data, ...data, seq: Number(message.seq) };
    render(row);
    if (!ACTIVE.has(row.data.status)) leave(row);
    updateSummary();
  }

  function connect() {
    clearTimeout(timer);
    setConnection(attempt ? "reconnecting" : "connecting", attempt ? "Reconnecting…" : "Connecting…");
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${window.location.host}${config.wsPath}`);
    socket = ws;
    ws.addEventListener("open", () => {
      if (ws !== socket) return;
      attempt = 0;
      setConnection("connected", "Live");
      poll();
    });
    ws.addEventListener("message", (event) => {
      if (ws !== socket) return;
      try {
        onMessage(JSON.parse(event.data));
      } catch {
        /* not JSON: ignore */
      }
    });
    ws.addEventListener("close", (event) => {
      if (ws !== socket) return;
      socket = null;
      if (event.code === 4401) {
        window.location.reload();
        return;
      }
      const delay = Math.min(30000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
      attempt += 1;
      setConnection("reconnecting", "Reconnecting…");
      timer = setTimeout(connect, delay);
    });
  }

  for (const data of config.initial || []) upsert(data);
  updateSummary();
  setInterval(() => {
    const now = Date.now();
    for (const row of rows.values()) updateAge(row, now);
  }, 1000);
  setInterval(poll, POLL_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") poll();
  });
  connect();
})();
