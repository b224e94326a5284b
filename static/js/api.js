// Fetch helpers for LockN Gen's JSON API, shared by every page. A request never throws for an
// HTTP error (only when the server cannot be reached): it answers with the status and the
// API's error body ({"error": …, "field": …}) so a page can show it beside the right field.

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
let signedOut = null;

/** What to do when a request answers 401 (the session ended): each page decides. */
export function whenSignedOut(callback) {
  signedOut = callback;
}

/** Django's CSRF token: its cookie (pages set it), else the form's hidden input. */
export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function retryAfterSeconds(headers) {
  const wait = Number.parseInt(headers.get("Retry-After") || "", 10);
  return Number.isFinite(wait) ? wait : null;
}

async function readJson(response) {
  if (response.status === 204) return null;
  try {
    return await response.json();
  } catch {
    return null; // not JSON (an HTML error page, a login redirect)
  }
}

/**
 * One request with JSON in and out. Answers
 * {ok, status, data, error, field, retryAfter, redirected}.
 */
export async function request(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!SAFE_METHODS.has(method)) headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await readJson(response);
  if (response.status === 401 && signedOut) signedOut();
  const problem = !response.ok && data && typeof data === "object" ? data : {};
  return {
    ok: response.ok,
    status: response.status,
    data,
    error: typeof problem.error === "string" ? problem.error : null,
    field: typeof problem.field === "string" ? problem.field : null,
    retryAfter: retryAfterSeconds(response.headers),
    redirected: response.redirected,
  };
}

export const getJson = (path) => request(path);
export const postJson = (path, body) => request(path, { method: "POST", body });
export const deleteJson = (path) => request(path, { method: "DELETE" });
