// The runs: newest first, filtered by status (#/runs?status=running), paged with the API's
// cursors, and kept current by the live feed of run events (/api/v1/runs/live).

import { api } from "./api.js";
import { currentRoute, errorBox } from "./app.js";
import { field, h, replace, when } from "./dom.js";

/** A run's statuses, in the order a run goes through them. */
export const STATUSES = ["requested", "running", "succeeded", "failed", "cancelled"];

/** Statuses a run never leaves. */
export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

const PAGE_SIZE = 20;

/** A status as a badge: <span class="badge running">running</span>. */
export function badge(status, attrs = {}) {
  return h("span", { class: `badge ${status}`, ...attrs }, status);
}

/** One step of a spec as people read it: "transcode webm · medium · 480p". */
export function describeStep(step) {
  if (!step || typeof step !== "object") return String(step ?? "");
  switch (step.kind) {
    case "probe":
      return "probe";
    case "transcode":
      return `transcode ${[step.format, step.quality, step.resolution].join(" · ")}${step.upscale ? " · upscale" : ""}`;
    case "thumbnail":
      return `thumbnail at ${seconds(step.at_seconds)}`;
    case "generate":
      return `generate (${step.provider || "provider"}, avatar ${step.avatar_id || "?"})`;
    default:
      return String(step.kind || "step");
  }
}

/** The input of a spec: an upload, a URL, or none (a generated video). */
export function describeInput(input) {
  if (!input) return "none (the first step generates the video)";
  if (input.media_id) return `uploaded media ${input.media_id}`;
  if (input.url) return input.url;
  return JSON.stringify(input);
}

/** Seconds as people read them: 1 s, 2.5 s, 1 min 5 s, 1 h 2 min. */
export function seconds(value) {
  const s = Number(value);
  if (!Number.isFinite(s)) return "";
  if (s < 60) return `${Math.round(s * 10) / 10} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** A time element: local date and time, the RFC 3339 text as its datetime. */
export function timeEl(rfc3339, attrs = {}) {
  if (!rfc3339) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: rfc3339, title: rfc3339, ...attrs }, when(rfc3339));
}

/** How far a run got: "2 of 3 done", "step 2 of 3 running (attempt 2)". */
function progressOf(run) {
  const steps = Array.isArray(run.steps) ? run.steps : [];
  const done = Array.isArray(run.outputs) ? run.outputs.length : 0;
  const total = steps.length;
  switch (run.status) {
    case "running": {
      const attempt = run.attempt > 1 ? ` (attempt ${run.attempt})` : "";
      return `step ${run.current_step + 1} of ${total}${attempt}`;
    }
    case "succeeded":
      return `${total} of ${total} done`;
    case "requested":
      return "waiting to start";
    default:
      return `${done} of ${total} done`;
  }
}

function stepsSummary(run) {
  const steps = Array.isArray(run.steps) ? run.steps : [];
  return h(
    "div",
    { class: "steps-summary" },
    h(
      "span",
      { class: "step-kinds" },
      steps.map((s, i) =>
        h(
          "span",
          {
            class: `step-kind${run.status === "running" && i === run.current_step ? " current" : ""}`,
            title: describeStep(s),
          },
          s?.kind || "?",
        ),
      ),
    ),
    h("span", { class: "muted step-progress-note" }, progressOf(run)),
    run.status === "failed" && run.failure_reason
      ? h("span", { class: "reason" }, run.failure_reason)
      : null,
  );
}

/** Reads the filter from the location: a known status, or "" for all. */
function statusFromRoute() {
  const status = currentRoute().query.get("status") || "";
  return STATUSES.includes(status) ? status : "";
}

/** The event that turns a run into `status` (for runs that enter a filtered list). */
const ENTERS = {
  requested: "RunRequested",
  running: "StepStarted",
  succeeded: "RunSucceeded",
  failed: "RunFailed",
  cancelled: "RunCancelled",
};

export async function render(main, _params, session) {
  const admin = session?.user?.role === "admin";
  const state = {
    status: statusFromRoute(),
    cursor: null, // the cursor of the page shown (null: the first page)
    back: [], // the cursors of the pages before it
    next: null, // the next page's cursor
    items: [],
    loading: false,
  };
  let stopped = false;

  // Controls.
  const filter = h(
    "select",
    { id: "status-filter", name: "status" },
    h("option", { value: "" }, "All"),
    STATUSES.map((s) => h("option", { value: s }, s[0].toUpperCase() + s.slice(1))),
  );
  filter.value = state.status;
  const liveState = h(
    "span",
    { id: "live-state", class: "live-state", role: "status", dataset: { state: "connecting" } },
    "Connecting…",
  );
  const reconnect = h(
    "button",
    { type: "button", class: "secondary small", id: "live-reconnect", hidden: true },
    "Reconnect",
  );
  const prev = h("button", { id: "prev-page", type: "button", class: "secondary", disabled: true }, "← Newer");
  const next = h("button", { id: "next-page", type: "button", class: "secondary", disabled: true }, "Older →");
  const pageNote = h("span", { class: "muted page-note", "aria-live": "polite" });
  const problems = h("div", { class: "problems", "aria-live": "polite" });
  const liveProblems = h("div", { class: "problems", "aria-live": "polite" });
  const body = h("tbody");
  const table = h(
    "table",
    { id: "runs-table" },
    h("caption", { class: "visually-hidden" }, "Runs, newest first"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Run"),
        h("th", { scope: "col" }, "Status"),
        // On a phone the run's page shows its steps; the list keeps id, status and time.
        h("th", { scope: "col", class: "optional" }, "Steps"),
        admin ? h("th", { scope: "col" }, "Owner") : null,
        h("th", { scope: "col" }, "Created"),
        h("th", { scope: "col", class: "optional" }, "Updated"),
      ),
    ),
    body,
  );
  const tableWrap = h("div", { class: "table-wrap" }, table);
  const empty = h("div", { id: "runs-empty", class: "empty card", hidden: true });

  replace(
    main,
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Runs"),
      h("a", { class: "button", href: "#/runs/new", id: "new-run-link" }, "New run"),
    ),
    h(
      "div",
      { class: "toolbar" },
      field("Status", filter),
      h("div", { class: "live-box" }, liveState, reconnect),
    ),
    problems,
    liveProblems,
    tableWrap,
    empty,
    h("div", { class: "pager" }, prev, next, pageNote),
  );

  // Rows.
  function row(run) {
    return h(
      "tr",
      { dataset: { runId: run.id, status: run.status, version: run.version ?? 0 } },
      h(
        "td",
        {},
        h(
          "a",
          { href: `#/runs/${encodeURIComponent(run.id)}`, class: "mono run-link", "aria-label": `Run ${run.id}`, title: run.id },
          h("span", { class: "id-full" }, run.id),
          // Narrow screens: the start (its time) and the end (random) of the UUIDv7.
          h("span", { class: "id-short", "aria-hidden": "true" }, `${run.id.slice(0, 8)}…${run.id.slice(-6)}`),
        ),
      ),
      h("td", {}, badge(run.status)),
      h("td", { class: "optional" }, stepsSummary(run)),
      admin ? h("td", {}, run.owner) : null,
      h("td", {}, timeEl(run.created_at)),
      h("td", { class: "optional" }, timeEl(run.updated_at)),
    );
  }

  function showEmpty() {
    const none = state.items.length === 0;
    tableWrap.hidden = none;
    empty.hidden = !none;
    if (!none) return;
    if (state.status) {
      replace(
        empty,
        h("p", {}, `No ${state.status} runs${state.cursor ? " on this page" : ""}.`),
        h("p", {}, h("a", { href: "#/runs", id: "show-all" }, "Show all runs")),
      );
    } else if (state.cursor) {
      replace(empty, h("p", {}, "No older runs."));
    } else {
      replace(
        empty,
        h("p", {}, "No runs yet. A run takes a video (an upload or a URL) through probe, transcode and thumbnail steps."),
        h("p", {}, h("a", { class: "button", href: "#/runs/new" }, "Start your first run")),
      );
    }
  }

  function showPager() {
    prev.disabled = state.back.length === 0 && state.cursor === null;
    next.disabled = !state.next;
    const page = state.back.length + (state.cursor === null ? 1 : 2);
    pageNote.textContent = state.items.length ? `Page ${page}` : "";
  }

  async function load() {
    state.loading = true;
    table.setAttribute("aria-busy", "true");
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state.status) query.set("status", state.status);
    if (state.cursor) query.set("cursor", state.cursor);
    try {
      const page = await api("GET", `/api/v1/runs?${query}`);
      if (stopped) return;
      state.items = Array.isArray(page?.items) ? page.items : [];
      state.next = page?.next_cursor || null;
      replace(body, state.items.map(row));
      replace(problems);
    } catch (error) {
      if (stopped) return;
      state.items = [];
      state.next = null;
      replace(body);
      replace(problems, errorBox(error));
    } finally {
      state.loading = false;
      table.removeAttribute("aria-busy");
    }
    showEmpty();
    showPager();
  }

  filter.addEventListener("change", () => {
    state.status = filter.value;
    state.cursor = null;
    state.back = [];
    // The filter is part of the location (shareable, and Back returns to the previous one);
    // pushState does not fire hashchange, so the page stays and reloads its list.
    const hash = state.status ? `#/runs?status=${encodeURIComponent(state.status)}` : "#/runs";
    if (location.hash !== hash) history.pushState(null, "", hash);
    load();
  });
  next.addEventListener("click", () => {
    if (!state.next || state.loading) return;
    state.back.push(state.cursor);
    state.cursor = state.next;
    load();
  });
  prev.addEventListener("click", () => {
    if (state.loading || (state.back.length === 0 && state.cursor === null)) return;
    state.cursor = state.back.length ? state.back.pop() : null;
    load();
  });

  // Live updates: the feed says which run changed (and at which global position); the row
  // is read again as of that position. Reads are coalesced per run.
  const pending = new Map();

  function admits(run) {
    return !state.status || run.status === state.status;
  }

  function applyView(run, fresh) {
    const old = body.querySelector(`tr[data-run-id="${CSS.escape(run.id)}"]`);
    if (old) {
      if (Number(old.dataset.version || 0) > Number(run.version || 0)) return; // a newer read won
      const index = state.items.findIndex((r) => r.id === run.id);
      if (index >= 0) state.items[index] = run;
      const tr = row(run);
      if (old.dataset.status !== run.status) tr.classList.add("changed");
      old.replaceWith(tr);
      return;
    }
    // Not in the list: only the first page takes runs, and only those the filter admits
    // that belong before its last row (older ones are on later pages).
    if (state.cursor !== null || !admits(run)) return;
    const last = state.items[state.items.length - 1];
    if (!fresh && state.next && last && run.id < last.id) return;
    let at = state.items.findIndex((r) => r.id < run.id);
    if (at < 0) at = state.items.length;
    state.items.splice(at, 0, run);
    const tr = row(run);
    tr.classList.add("changed", "arrived");
    const before = body.children[at] || null;
    body.insertBefore(tr, before);
    showEmpty();
    showPager();
  }

  async function reread(id) {
    const p = pending.get(id);
    if (!p || stopped) return;
    p.running = true;
    p.timer = null;
    p.again = false;
    const { position, fresh } = p;
    try {
      const headers = position ? { "aurora-after-position": String(position) } : {};
      const run = await api("GET", `/api/v1/runs/${encodeURIComponent(id)}`, undefined, headers);
      if (stopped) return;
      applyView(run, fresh);
      replace(liveProblems);
    } catch (error) {
      if (stopped) return;
      // A run gone from view (403/404) is not worth a message; anything else is.
      if (!(error?.status === 403 || error?.status === 404)) {
        replace(liveProblems, errorBox(error));
      }
    } finally {
      p.running = false;
      if (p.again && !stopped) p.timer = setTimeout(() => reread(id), 150);
      else pending.delete(id);
    }
  }

  function changed(id, position, fresh) {
    let p = pending.get(id);
    if (!p) {
      p = { position: 0, fresh: false, timer: null, running: false, again: false };
      pending.set(id, p);
    }
    p.position = Math.max(p.position, Number(position) || 0);
    p.fresh = p.fresh || fresh;
    if (p.running) {
      p.again = true;
      return;
    }
    clearTimeout(p.timer);
    p.timer = setTimeout(() => reread(id), 200);
  }

  function onRunEvent(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    const id = event?.id;
    if (typeof id !== "string" || !id) return;
    const shown = state.items.some((r) => r.id === id);
    if (shown) {
      // Milestones (25/50/75 %) change nothing the list shows, and a step's success is
      // followed by the next step's start or the run's end: reads are rate-limited, so
      // only the events that change the row are read again.
      if (event.event === "StepProgressed" || event.event === "StepSucceeded") return;
      changed(id, event.position, false);
      return;
    }
    if (state.cursor !== null) return;
    if (event.event === "RunRequested") {
      if (!state.status || state.status === "requested") changed(id, event.position, true);
    } else if (state.status && ENTERS[state.status] === event.event) {
      changed(id, event.position, false);
    }
  }

  // The feed itself, with a visible state and reconnection.
  let source = null;
  let retryTimer = null;
  let retryDelay = 2000;
  let broken = false;

  function setLive(kind, text) {
    liveState.dataset.state = kind;
    liveState.textContent = text;
    reconnect.hidden = kind !== "closed";
  }

  function connect() {
    clearTimeout(retryTimer);
    if (stopped) return;
    source?.close();
    setLive("connecting", "Connecting…");
    if (typeof EventSource !== "function") {
      setLive("closed", "Live updates unavailable in this browser");
      return;
    }
    source = new EventSource("/api/v1/runs/live");
    source.addEventListener("open", () => {
      setLive("live", "Live");
      retryDelay = 2000;
      if (broken) {
        // Events may have passed while disconnected: read the page again.
        broken = false;
        load();
      }
    });
    source.addEventListener("run", onRunEvent);
    source.addEventListener("unauthorized", () => {
      source.close();
      setLive("closed", "Disconnected: the session ended");
    });
    source.addEventListener("error", () => {
      if (stopped) return;
      broken = true;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (401, 403, 429, 5xx) or not an event stream: try again later, slower
        // each time; a read of the list shows why if the API refuses it.
        setLive("closed", "Disconnected");
        retryTimer = setTimeout(() => {
          load();
          connect();
        }, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 60000);
      } else {
        setLive("reconnecting", "Reconnecting…");
      }
    });
  }
  reconnect.addEventListener("click", () => {
    retryDelay = 2000;
    load();
    connect();
  });

  await load();
  connect();

  return () => {
    stopped = true;
    clearTimeout(retryTimer);
    source?.close();
    for (const p of pending.values()) clearTimeout(p.timer);
    pending.clear();
  };
}

