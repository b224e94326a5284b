// The "New generation" form: checked here first, then by the API, whose errors are shown
// beside the field they name ({"error": …, "field": …}).

import { postJson } from "../api.js";

const FIELDS = ["prompt", "negativePrompt", "width", "height", "steps", "seed"];
const NUMBERS = ["width", "height", "steps", "seed"];

function clearErrors(form) {
  for (const el of form.querySelectorAll("[data-error-for]")) {
    el.hidden = true;
    el.textContent = "";
  }
  for (const name of FIELDS) form.elements[name].removeAttribute("aria-invalid");
  const formError = document.getElementById("form-error");
  formError.hidden = true;
  formError.textContent = "";
}

/** Beside its field when it names one of ours, else above the button. */
function showError(form, field, message) {
  const slot = FIELDS.includes(field) && form.querySelector(`[data-error-for="${field}"]`);
  if (slot) {
    slot.textContent = message;
    slot.hidden = false;
    form.elements[field].setAttribute("aria-invalid", "true");
    form.elements[field].focus();
    return;
  }
  const formError = document.getElementById("form-error");
  formError.textContent = message;
  formError.hidden = false;
}

function readForm(form) {
  const body = {
    prompt: form.elements.prompt.value.trim(),
    negativePrompt: form.elements.negativePrompt.value.trim(),
  };
  const problems = [];
  for (const name of NUMBERS) {
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

/** The words for an API answer that created nothing. */
function refusal(response) {
  if (response.status === 400) return response.error || "Invalid request.";
  if (response.status === 429) {
    const wait = response.retryAfter;
    return wait != null
      ? `You are going too fast. Try again in ${wait} second${wait === 1 ? "" : "s"}.`
      : "You are going too fast. Try again in a moment.";
  }
  if (response.status === 503) {
    return "The image server is not reachable right now. Try again in a moment.";
  }
  if (response.status === 403) return "Your session has expired. Reload the page and sign in again.";
  const detail = response.error ? `: ${response.error}` : "";
  return `Could not start the generation (${response.status})${detail}`;
}

async function submit(form, apiBase, created) {
  clearErrors(form);
  const { body, problems } = readForm(form);
  if (problems.length) {
    // Reversed: the first problem's field is focused last, so it keeps the focus.
    for (const [field, message] of problems.reverse()) showError(form, field, message);
    return;
  }
  const button = document.getElementById("generate-button");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const response = await postJson(apiBase, body);
    if (response.status === 201 && response.data) created(response.data);
    else showError(form, response.status === 400 ? response.field : null, refusal(response));
  } catch {
    showError(form, null, "Could not reach LockN Gen. Check your connection and try again.");
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/** Wire the form: `created(json)` gets each generation the API created, `submitting(promise)`
 * each request as it starts. */
export function setUpForm(form, apiBase, { created, submitting }) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(submit(form, apiBase, created));
  });
  document.getElementById("seed-random").addEventListener("click", () => {
    form.elements.seed.value = String(Math.floor(Math.random() * 2 ** 31));
  });
}
