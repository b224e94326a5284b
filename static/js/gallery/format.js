// What the gallery says about a generation, in words and numbers: no DOM here.

export const STATUS_LABEL = {
  queued: "Queued",
  running: "Running",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

export const statusLabel = (status) => STATUS_LABEL[status] || status;

export function percentOf(gen) {
  return Math.max(0, Math.min(100, Math.round(Number(gen.progress) || 0)));
}

export function parseTime(value) {
  const t = value ? Date.parse(value) : NaN;
  return Number.isNaN(t) ? null : t;
}

/** "1:05", or "1:02:05" past an hour. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** Estimates are rough and say so: "~12 s", "~3 min". */
export function formatEta(seconds) {
  if (seconds < 60) return `~${Math.max(1, Math.round(seconds))} s`;
  return `~${Math.round(seconds / 60)} min`;
}

function workflowNodes(gen) {
  const workflow = gen.workflow && typeof gen.workflow === "object" ? gen.workflow : {};
  return Object.values(workflow).filter((node) => node && typeof node === "object");
}

/** The text to show for a generation: its prompt, else what its graph says. */
export function promptOf(gen) {
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

function errorSummary(error, node, detail) {
  if (/out of memory|\boom\b|alloc/i.test(detail)) {
    return "The GPU ran out of memory. Try a smaller size or fewer steps.";
  }
  if (/interrupt/i.test(detail)) return "The generation was stopped on the image server.";
  if (/lost|unreachable|disconnect|connection/i.test(error)) {
    return "We lost contact with the image server while this was running.";
  }
  if (/ckpt|checkpoint|model .*not found|no such file/i.test(detail)) {
    return "A model this generation needs is missing on the image server.";
  }
  return node ? `Something went wrong in the ${node} step.` : "Something went wrong while generating.";
}

/** ComfyUI's error ("<node class> failed: <exception>") in words a user understands. */
export function describeError(error) {
  if (!error) return { summary: "The generation failed for an unknown reason.", detail: "" };
  const match = /^([\w .:-]{1,80}?) failed: ([\s\S]*)$/.exec(error);
  const node = match ? match[1] : null;
  const detail = match ? match[2] : error;
  return { summary: errorSummary(error, node, detail), detail };
}

/** "KSampler · step 5 / 20", "Queued · position 2", "Done"… */
export function nodeText(gen) {
  if (gen.status === "queued") {
    return gen.queuePosition != null ? `Queued · position ${gen.queuePosition}` : "Waiting to start";
  }
  if (gen.status === "running") {
    const node = gen.currentNode || "Starting";
    if (gen.step != null && gen.totalSteps) return `${node} · step ${gen.step} / ${gen.totalSteps}`;
    // Newer ComfyUI says what a node does before its first step (e.g. loading a model).
    if (gen.activity) return `${node} · ${capitalize(String(gen.activity))}…`;
    return node;
  }
  if (gen.status === "completed") {
    const n = (gen.images || []).length;
    return n > 1 ? `${n} images` : "Done";
  }
  return "";
}

const capitalize = (text) => `${text.charAt(0).toUpperCase()}${text.slice(1)}`;

/** The line under a card that ended without an image. */
export function endMessage(gen, hasOutput) {
  if (gen.status === "failed") {
    const { summary, detail } = describeError(gen.error);
    return detail && detail !== summary ? `${summary} (${detail})` : summary;
  }
  if (gen.status === "cancelled") return "Cancelled. Nothing was saved.";
  if (gen.status === "completed" && !hasOutput) {
    return "Finished, but the image server returned no image.";
  }
  return "";
}

// This browser's clock minus the server's, plus the least delivery delay seen so far.
let clockOffsetMs = Infinity;

/** When, on this browser's clock, the server built a message: its timestamp shifted by the
 * smallest arrival delay seen, so an estimate that arrived late counts down from when it was
 * made, not from when it came. */
export function madeAt(message) {
  const sent = parseTime(message.timestamp);
  if (sent == null) return Date.now();
  clockOffsetMs = Math.min(clockOffsetMs, Date.now() - sent);
  return sent + clockOffsetMs;
}

/** The estimate, counted down since `since` (a changed estimate alone sends no message). */
export function etaText(gen, since, now = Date.now()) {
  const elapsed = (now - (since || now)) / 1000;
  if (gen.status === "running" && gen.etaSeconds != null) {
    return `${formatEta(Math.max(0, gen.etaSeconds - elapsed))} left`;
  }
  if (gen.status === "queued" && gen.startsInSeconds != null) {
    return `starts in ${formatEta(Math.max(0, gen.startsInSeconds - elapsed))}`;
  }
  return "";
}
