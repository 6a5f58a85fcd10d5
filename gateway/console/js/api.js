// The API client of the console: same-origin fetches carrying the session cookie, the
// CSRF token on every state-changing request, and errors as problem+json.

let csrf = null;

/** Remembers the session's CSRF token (from POST/GET /api/v1/auth/session). */
export function setCsrf(token) {
  csrf = token;
}

/** An answer other than 2xx: its status, its problem document, its Retry-After. */
export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.retryAfter = retryAfter;
  }
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/** The headers of a request by the console: the CSRF token unless the method is safe. */
export function headersFor(method, extra = {}) {
  const headers = { accept: "application/json", ...extra };
  if (!SAFE.has(method) && csrf) headers["x-csrf-token"] = csrf;
  return headers;
}

/** Throws an ApiError for a response that is not 2xx. */
export async function check(response) {
  if (response.ok) return response;
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    problem = { title: response.statusText };
  }
  const retry = response.headers.get("retry-after");
  throw new ApiError(response.status, problem, retry ? Number(retry) : undefined);
}

/**
 * Calls the API: api("POST", "/api/v1/runs", {…}). JSON in, JSON out (null for 204).
 * Throws ApiError for anything but 2xx, and calls the 401 handler first.
 */
export async function api(method, path, body, extraHeaders = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: headersFor(method, extraHeaders),
  };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) unauthorized();
  await check(response);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

let onUnauthorized = () => {};

/** What to do when the API says 401 (the session ended): the app sends people to sign in. */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export function unauthorized() {
  onUnauthorized();
}
