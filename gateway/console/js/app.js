// The console's shell: the session, the navigation, the router (#/path), and how a page
// shows an API refusal. Each page is a module exporting `render(main, params, session)`;
// it may return a function that stops what it started (event streams, timers).

import { api, ApiError, setCsrf, whenUnauthorized } from "./api.js";
import { h, replace } from "./dom.js";

/** The signed-in user ({id, username, role, tier}), or null. */
export const session = { user: null, expiresAt: null };

/** Route table: [pattern, loader, needs admin]. `:name` captures one path segment. */
const ROUTES = [
  ["/sign-in", () => import("./signin.js"), false, true],
  ["/runs", () => import("./runs.js"), false],
  ["/runs/new", () => import("./newrun.js"), false],
  ["/runs/:id", () => import("./run.js"), false],
  ["/keys", () => import("./keys.js"), false],
  ["/admin/users", () => import("./admin/users.js"), true],
  ["/admin/blocks", () => import("./admin/blocks.js"), true],
  ["/admin/audit", () => import("./admin/audit.js"), true],
  ["/admin/health", () => import("./admin/health.js"), true],
];

function match(path) {
  const parts = path.split("/").filter(Boolean);
  for (const [pattern, load, admin, open] of ROUTES) {
    const want = pattern.split("/").filter(Boolean);
    if (want.length !== parts.length) continue;
    const params = {};
    if (
      want.every((w, i) => {
        if (w.startsWith(":")) {
          params[w.slice(1)] = decodeURIComponent(parts[i]);
          return true;
        }
        return w === parts[i];
      })
    ) {
      return { load, admin, open: !!open, params };
    }
  }
  return null;
}

/** The path of the current location hash (#/runs/x → /runs/x) and its query. */
export function currentRoute() {
  const raw = location.hash.replace(/^#/, "") || "/runs";
  const [path, query = ""] = raw.split("?");
  return { path, query: new URLSearchParams(query) };
}

/** Goes to `path` (#/…). */
export function go(path) {
  if (location.hash === `#${path}`) route();
  else location.hash = `#${path}`;
}

/** A refusal of the API as a message for people: what happened and what to do. */
export function explain(error) {
  if (!(error instanceof ApiError)) {
    return `Something went wrong: ${error?.message || error}`;
  }
  const p = error.problem || {};
  switch (error.status) {
    case 401:
      return "Your session has ended. Sign in again.";
    case 403:
      return `Not allowed: ${p.detail || "your account may not do this."}`;
    case 404:
      return `Not found: ${p.detail || "it does not exist, or is not yours to see."}`;
    case 429:
      return `Too many requests: retry in ${error.retryAfter ?? "a few"} s.${p.detail ? ` (${p.detail})` : ""}`;
    case 503:
      return `The service is unavailable for a moment${error.retryAfter ? `: retry in ${error.retryAfter} s` : ""}. ${p.detail || ""}`;
    default:
      return p.detail || p.title || `The request failed (HTTP ${error.status}).`;
  }
}

/** A message box for an error (role=alert, so screen readers announce it). */
export function errorBox(error) {
  const status = error instanceof ApiError ? error.status : 0;
  return h(
    "div",
    { class: `notice error status-${status}`, role: "alert", dataset: { status } },
    explain(error),
    status === 401 ? [" ", h("a", { href: "#/sign-in" }, "Sign in")] : null,
  );
}

/**
 * Shows the API's validation errors next to the fields they concern: problem documents
 * name them in `errors` ([{field|pointer, detail}]) or in `field`; anything not placed
 * goes into `fallback`.
 */
export function showFieldErrors(form, error, fallback) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const p = error instanceof ApiError ? error.problem : {};
  const list = Array.isArray(p.errors) ? p.errors : p.field ? [{ field: p.field, detail: p.detail }] : [];
  let placed = false;
  for (const item of list) {
    const name = String(item.field || item.pointer || "").replace(/^\//, "").replaceAll("/", ".");
    const box = findField(form, name);
    if (box) {
      box.querySelector(".field-error").textContent = item.detail || item.message || "invalid";
      box.querySelector("input,select,textarea")?.setAttribute("aria-invalid", "true");
      placed = true;
    }
  }
  replace(fallback, placed && error.status === 422 ? null : errorBox(error));
}

function findField(form, name) {
  // The most specific field a path names: steps.1.format, then steps.1, then steps.
  const parts = name.split(".");
  while (parts.length) {
    const box = form.querySelector(`.field[data-field="${CSS.escape(parts.join("."))}"]`);
    if (box) return box;
    parts.pop();
  }
  return null;
}

function nav() {
  const user = session.user;
  const links = [
    ["#/runs", "Runs"],
    ["#/runs/new", "New run"],
    ["#/keys", "API keys"],
  ];
  if (user?.role === "admin") {
    links.push(
      ["#/admin/users", "Users"],
      ["#/admin/blocks", "Blocks"],
      ["#/admin/audit", "Audit"],
      ["#/admin/health", "Health"],
    );
  }
  const here = `#${currentRoute().path}`;
  return h(
    "nav",
    { "aria-label": "Main" },
    h("a", { class: "brand", href: "#/runs" }, "Aurora"),
    h(
      "ul",
      {},
      links.map(([href, text]) =>
        h("li", {}, h("a", { href, "aria-current": href === here ? "page" : null }, text)),
      ),
    ),
    user
      ? h(
          "div",
          { class: "who" },
          h("span", { id: "whoami" }, `${user.username} · ${user.role} · ${user.tier}`),
          h("button", { id: "sign-out", type: "button", onclick: signOut }, "Sign out"),
        )
      : null,
  );
}

async function signOut() {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await api("DELETE", "/api/v1/auth/session");
      break;
    } catch (error) {
      // The session had ended already: signed out either way.
      if (error?.status === 401) break;
      // Signed in again in another tab meanwhile: this page's CSRF token is the old
      // session's. Take the current one and sign that session out.
      if (attempt === 0 && error?.problem?.type === "/problems/csrf-refused") {
        try {
          const answer = await api("GET", "/api/v1/auth/session");
          if (!answer) break;
          startSession(answer);
          continue;
        } catch {
          break;
        }
      }
      // Anything else: the session may still be live. Say so; never pretend.
      replace(
        document.getElementById("main"),
        errorBox(error),
        h("p", {}, "You are still signed in: sign out again in a moment."),
      );
      return;
    }
  }
  session.user = null;
  setCsrf(null);
  go("/sign-in");
}

/** Sets the session from an answer of /api/v1/auth/session. */
export function startSession(answer) {
  session.user = answer.user;
  session.expiresAt = answer.expires_at;
  setCsrf(answer.csrf_token);
}

/** Reads the session the cookie holds, if any. */
async function resume() {
  try {
    // 204 (null): no session.
    const answer = await api("GET", "/api/v1/auth/session");
    if (answer) startSession(answer);
    else session.user = null;
  } catch {
    session.user = null;
  }
}

let stop = null;
let navigation = 0;

async function route() {
  if (typeof stop === "function") stop();
  stop = null;
  const mine = ++navigation;
  const { path } = currentRoute();
  const found = match(path);
  const header = document.getElementById("top");
  const main = document.getElementById("main");
  if (!found) {
    replace(header, nav());
    replace(main, h("h1", {}, "Not found"), h("p", {}, "No page here. ", h("a", { href: "#/runs" }, "Go to the runs.")));
    return;
  }
  if (!found.open && !session.user) {
    go("/sign-in");
    return;
  }
  replace(header, nav());
  if (found.admin && session.user?.role !== "admin") {
    replace(main, h("h1", {}, "Not allowed"), errorBox(new ApiError(403, { detail: "this page is for admins." })));
    return;
  }
  replace(main, h("p", { class: "loading", "aria-busy": "true" }, "Loading…"));
  try {
    const page = await found.load();
    const stopper = await page.render(main, found.params, session);
    // Left while it was rendering: stop what it started at once.
    if (mine !== navigation) {
      if (typeof stopper === "function") stopper();
      return;
    }
    stop = stopper;
  } catch (error) {
    if (mine !== navigation) return;
    replace(main, errorBox(error));
  }
  main.focus({ preventScroll: true });
}

whenUnauthorized(() => {
  session.user = null;
  if (currentRoute().path !== "/sign-in") go("/sign-in");
});

window.addEventListener("hashchange", route);
await resume();
route();
