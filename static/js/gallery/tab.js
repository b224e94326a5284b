// The tab follows the user's oldest running generation (title "NN% · LockN Gen" and a drawn
// favicon), and, once the user opts in, the desktop hears when a generation ends while the
// tab is hidden.

import { parseTime, percentOf, promptOf } from "./format.js";

const BASE_TITLE = document.title;
const iconLink = document.querySelector('link[rel="icon"]');
const BASE_ICON = iconLink ? iconLink.getAttribute("href") : "";
const NOTIFY_KEY = "lockngen.notify";
let shownIconPercent = null;

/** The oldest running generation among `gens`: the one the tab shows. */
function leadingRunning(gens) {
  let lead = null;
  for (const gen of gens) {
    if (gen.status !== "running") continue;
    if (!lead || (parseTime(gen.createdAt) ?? 0) < (parseTime(lead.createdAt) ?? 0)) lead = gen;
  }
  return lead;
}

export function updateTab(gens) {
  const lead = leadingRunning(gens);
  if (!lead) {
    document.title = BASE_TITLE;
    setIcon(BASE_ICON, null);
    return;
  }
  const percent = percentOf(lead);
  document.title = `${percent}% · LockN Gen`;
  if (percent !== shownIconPercent) setIcon(progressIcon(percent), percent);
}

/** A 32 px icon: the brand colour with a ring that fills as the generation runs. */
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

function renderNotifyButton(button) {
  button.hidden = !("Notification" in window);
  const on = notificationsOn();
  button.textContent = on ? "Notifications on" : "Notify me";
  button.setAttribute("aria-pressed", String(on));
}

/** The opt-in button: the browser's permission is asked for only once the user clicks. */
export function setUpNotifyButton(button, toast) {
  button.addEventListener("click", async () => {
    if (notificationsOn()) {
      localStorage.setItem(NOTIFY_KEY, "off");
    } else {
      const permission =
        Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      if (permission === "granted") localStorage.setItem(NOTIFY_KEY, "on");
      else toast("Notifications are blocked for this site in the browser's settings.");
    }
    renderNotifyButton(button);
  });
  renderNotifyButton(button);
}

/** One of the user's generations ended while the tab is hidden: tell the desktop. */
export function notifyEnd(gen) {
  if (!document.hidden || !notificationsOn()) return;
  const prompt = promptOf(gen).slice(0, 80);
  const image = (gen.images || [])[0];
  if (gen.status === "completed") {
    const icon = image ? new URL(image, window.location.href).href : undefined;
    new Notification(`Done: ${prompt}`, { body: "Your image is ready.", icon, tag: gen.id });
  } else if (gen.status === "failed") {
    new Notification(`Failed: ${prompt}`, { body: gen.error || "It failed.", tag: gen.id });
  }
}
