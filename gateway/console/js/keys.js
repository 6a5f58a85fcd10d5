// API keys (#/keys): the caller's live tokens (revocable), a new labelled key (shown
// once), and narrowing a key in this browser: one Biscuit block of checks appended
// offline, with the Biscuit library (vendored wasm) loaded only when someone narrows.
// Nothing about a narrowing is sent to the server: it only lists its public root keys.

import { api } from "./api.js";
import { errorBox, showFieldErrors } from "./app.js";
import { field, h, replace, when } from "./dom.js";

/** Limits of POST /api/v1/auth/tokens (gateway/src/http/tokens.rs, domain MAX_LABEL_LEN). */
const DEFAULT_DAYS = 90;
const MAX_DAYS = 365;
const MAX_LABEL_LEN = 64;

export async function render(main) {
  const status = h("div", { id: "keys-status", class: "status", "aria-live": "polite" });
  const tableBox = h("div", { class: "table-wrap" });
  const narrow = narrowSection();
  const create = createSection({
    onCreated: async (answer) => {
      narrow.offer(answer.token);
      await refresh();
    },
  });

  async function refresh() {
    try {
      const answer = await api("GET", "/api/v1/auth/tokens");
      replace(tableBox, tokensTable(answer.items || [], status));
    } catch (error) {
      replace(tableBox, errorBox(error));
    }
  }

  replace(
    main,
    h("h1", {}, "API keys"),
    h(
      "p",
      { class: "muted" },
      "Your live tokens: this session, your other sessions, and the API keys you created. ",
      "Send a key as ",
      h("code", {}, "Authorization: Bearer <key>"),
      ". A key states your role and tier as they were when it was made.",
    ),
    h("section", { class: "card", "aria-labelledby": "keys-list-title" }, h("h2", { id: "keys-list-title" }, "Your tokens"), status, tableBox),
    create.element,
    narrow.element,
  );
  await refresh();
}

// ---- the list ---------------------------------------------------------------------------

function tokensTable(items, status) {
  const body = h("tbody", {});
  const empty = () => h("tr", { class: "empty" }, h("td", { colspan: 5, class: "muted" }, "No live tokens."));
  for (const item of items) body.append(tokenRow(item, status, () => {
    if (!body.querySelector("tr[data-token-id]")) body.append(empty());
  }));
  if (!items.length) body.append(empty());
  return h(
    "table",
    { id: "keys-table" },
    h("caption", { class: "visually-hidden" }, "Your live tokens"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Label"),
        h("th", { scope: "col" }, "Kind"),
        h("th", { scope: "col", class: "optional" }, "Created"),
        h("th", { scope: "col" }, "Expires"),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")),
      ),
    ),
    body,
  );
}

function tokenRow(item, status, onRemoved) {
  const name = item.label || (item.kind === "session" ? "Session" : "API key");
  const kind = item.kind === "api_key" ? "API key" : item.kind === "session" ? "session" : String(item.kind);
  let action;
  if (item.current) {
    action = h("span", { class: "badge current" }, "this session");
  } else {
    action = h(
      "button",
      {
        type: "button",
        class: "danger revoke-key",
        "aria-label": `Revoke ${kind} ${name}`,
        onclick: async () => {
          const what = item.kind === "session" ? `the session started ${when(item.created_at)}` : `the key "${name}"`;
          if (!confirm(`Revoke ${what}? Anything using it stops working at once, and so does every key narrowed from it.`)) {
            return;
          }
          action.disabled = true;
          try {
            await api("DELETE", `/api/v1/auth/tokens/${encodeURIComponent(item.id)}`);
            row.remove();
            onRemoved();
            replace(status, h("p", { class: "notice ok", role: "status" }, `Revoked ${what}.`));
          } catch (error) {
            action.disabled = false;
            replace(status, errorBox(error));
          }
        },
      },
      "Revoke",
    );
  }
  const row = h(
    "tr",
    { dataset: { tokenId: item.id }, class: item.current ? "current" : null },
    h("td", { class: "label" }, name, h("br", {}), h("span", { class: "mono muted small" }, item.id)),
    h("td", { class: "kind" }, kind),
    h("td", { class: "created optional" }, h("time", { datetime: item.created_at }, when(item.created_at))),
    h("td", { class: "expires" }, h("time", { datetime: item.expires_at }, when(item.expires_at))),
    h("td", { class: "actions" }, action),
  );
  return row;
}

// ---- creating a key ---------------------------------------------------------------------

function createSection({ onCreated }) {
  const label = h("input", {
    id: "key-label",
    name: "label",
    required: true,
    maxlength: MAX_LABEL_LEN,
    autocomplete: "off",
    placeholder: "e.g. nightly export",
  });
  const days = h("input", {
    id: "key-days",
    name: "expires_in_days",
    type: "number",
    inputmode: "numeric",
    min: 1,
    max: MAX_DAYS,
    step: 1,
    value: DEFAULT_DAYS,
    required: true,
  });
  const problems = h("div", { class: "problems", "aria-live": "polite" });
  const shown = h("div", { id: "new-key", "aria-live": "polite" });
  const button = h("button", { id: "create-key", type: "submit" }, "Create key");
  const form = h(
    "form",
    { id: "create-key-form", novalidate: true },
    h("div", { class: "row" }, field("Label", label, `What the key is for (1 to ${MAX_LABEL_LEN} characters).`), field("Lifetime (days)", days, `1 to ${MAX_DAYS}; ${DEFAULT_DAYS} by default.`)),
    problems,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    replace(problems);
    const text = label.value;
    const n = Number(days.value);
    let bad = false;
    if (!text.trim() || [...text].length > MAX_LABEL_LEN || /[\u0000-\u001f\u007f-\u009f]/.test(text)) {
      fieldError(label, `A label has 1 to ${MAX_LABEL_LEN} characters, not only spaces, and no control characters.`);
      bad = true;
    }
    if (!Number.isInteger(n) || n < 1 || n > MAX_DAYS) {
      fieldError(days, `A whole number of days from 1 to ${MAX_DAYS}.`);
      bad = true;
    }
    if (bad) {
      form.querySelector("[aria-invalid]")?.focus();
      return;
    }
    button.disabled = true;
    try {
      const answer = await api("POST", "/api/v1/auth/tokens", { label: text, expires_in_days: n });
      showSecret(shown, answer);
      form.reset();
      days.value = DEFAULT_DAYS;
      await onCreated(answer);
      shown.querySelector("#new-key-secret")?.focus();
    } catch (error) {
      showFieldErrors(form, error, problems);
    } finally {
      button.disabled = false;
    }
  });
  const element = h(
    "section",
    { class: "card", "aria-labelledby": "create-key-title" },
    h("h2", { id: "create-key-title" }, "Create an API key"),
    form,
    shown,
  );
  return { element };
}

function showSecret(box, answer) {
  const secret = h("code", { id: "new-key-secret", class: "secret", tabindex: "0" }, answer.token);
  const copied = h("span", { class: "muted", role: "status" });
  replace(
    box,
    h(
      "div",
      { class: "notice warn", role: "alert" },
      h("strong", {}, "Copy this key now: it is shown only now. "),
      "Aurora keeps no copy; if you lose it, revoke it and create another.",
    ),
    h("p", {}, `Key "${answer.label ?? ""}", expires ${when(answer.expires_at)}:`),
    secret,
    h(
      "div",
      { class: "row" },
      h("button", { id: "copy-new-key", type: "button", class: "secondary", onclick: () => copy(answer.token, secret, copied) }, "Copy key"),
      copied,
    ),
  );
}

// ---- narrowing a key in this browser -------------------------------------------------------

function narrowSection() {
  const source = h("textarea", {
    id: "narrow-source",
    name: "source",
    rows: 4,
    spellcheck: "false",
    autocomplete: "off",
    autocapitalize: "off",
    placeholder: "Paste an Aurora API key (or create one above)",
  });
  const readOnly = h("input", {
    id: "narrow-read-only",
    name: "read_only",
    type: "checkbox",
    "aria-describedby": "narrow-read-only-hint narrow-read-only-error",
  });
  const run = h("input", {
    id: "narrow-run",
    name: "run",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "e.g. 0190a0b0-…",
  });
  const expiry = h("input", { id: "narrow-expiry", name: "expiry", type: "datetime-local" });
  const problems = h("div", { class: "problems", "aria-live": "polite" });
  const result = h("div", { id: "narrow-result", "aria-live": "polite" });
  const button = h("button", { id: "narrow-key", type: "submit" }, "Narrow the key");
  let offered = null;

  const form = h(
    "form",
    { id: "narrow-form", novalidate: true },
    field("Key to narrow", source, "It stays in this page: narrowing happens here, offline."),
    h(
      "fieldset",
      {},
      h("legend", {}, "Restrictions (one or more)"),
      h(
        "div",
        { class: "field check", dataset: { field: "read_only" } },
        readOnly,
        h("label", { for: "narrow-read-only" }, "Read only"),
        h("p", { class: "hint", id: "narrow-read-only-hint" }, "Only reading (operations ending in “:read”) and following runs (runs:subscribe)."),
        h("p", { class: "field-error", id: "narrow-read-only-error", role: "alert" }),
      ),
      field("Only this run (optional)", run, "A run id. Such a key reads that run, its events and artifacts, and may cancel it unless read only; it cannot list runs, create runs or upload media."),
      field("Expires before (optional, your local time)", expiry, "Earlier than the key's own expiry; a later time changes nothing."),
    ),
    problems,
    button,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    replace(problems);
    replace(result);
    const token = source.value.trim();
    let runId = null;
    let until = null;
    let bad = false;
    if (!token) {
      fieldError(source, "Paste the key to narrow, or create one above.");
      bad = true;
    }
    if (run.value.trim()) {
      runId = uuid(run.value);
      if (!runId) {
        fieldError(run, "A run id is a UUID, e.g. 0190a0b0-5b7e-7d3c-9c1a-2f4e6a8b0c1d.");
        bad = true;
      }
    }
    if (expiry.value) {
      until = new Date(expiry.value);
      if (isNaN(until)) {
        fieldError(expiry, "Not a date and time.");
        bad = true;
      } else if (until.getTime() <= Date.now() + 60_000) {
        fieldError(expiry, "Pick a time in the future (at least a minute from now).");
        bad = true;
      }
    } else if (expiry.validity && expiry.validity.badInput) {
      fieldError(expiry, "Not a complete date and time.");
      bad = true;
    }
    if (!bad && !readOnly.checked && !runId && !until) {
      fieldError(readOnly, "Choose at least one restriction: read only, one run, or an earlier expiry.");
      bad = true;
    }
    if (bad) {
      form.querySelector("[aria-invalid]")?.focus();
      return;
    }
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    replace(problems, h("p", { class: "loading" }, "Loading the Biscuit library…"));
    try {
      const made = await narrowKey({ token, readOnly: readOnly.checked, runId, until });
      replace(problems, made.notes.length ? h("ul", { class: "notice" }, made.notes.map((n) => h("li", {}, n))) : null);
      showNarrowed(result, made, { runId, readOnly: readOnly.checked });
      result.querySelector("#narrowed-key")?.focus();
    } catch (error) {
      if (error instanceof FieldProblem) {
        replace(problems);
        fieldError(source, error.message);
        source.focus();
      } else {
        replace(problems, errorBox(error));
      }
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });

  // The earliest expiry the picker offers: now (local time).
  const setMin = () => {
    const now = new Date(Date.now() - new Date().getTimezoneOffset() * 60_000);
    expiry.min = now.toISOString().slice(0, 16);
  };
  setMin();
  expiry.addEventListener("focus", setMin);

  const element = h(
    "section",
    { class: "card", "aria-labelledby": "narrow-title" },
    h("h2", { id: "narrow-title" }, "Narrow a key (in this browser)"),
    h(
      "p",
      { class: "muted" },
      "Make a key that can do less than the one you have, to hand to a script or a colleague: ",
      "one more Biscuit block of checks, made here in the page. Neither key is sent to the server; ",
      "the page only fetches the server's public root keys to read the key. A narrowed key cannot create ",
      "or revoke keys, and revoking the original revokes it too.",
    ),
    form,
    result,
  );
  return {
    element,
    /** Prefills the source with a key just created (unless someone typed another). */
    offer(token) {
      if (!source.value.trim() || source.value === offered) {
        source.value = token;
        offered = token;
      }
    },
  };
}

class FieldProblem extends Error {}

let rootKeys = null;

/** The server's public root keys (GET /api/v1/auth/keys), fetched once per page load. */
async function publicKeys() {
  if (!rootKeys) {
    const answer = await api("GET", "/api/v1/auth/keys");
    rootKeys = Array.isArray(answer?.keys) ? answer.keys : [];
  }
  return rootKeys;
}

async function narrowKey({ token, readOnly, runId, until }) {
  const biscuitJs = await import("./biscuit.js");
  const [lib, keys] = await Promise.all([biscuitJs.loadBiscuit(), publicKeys()]);
  let parsed;
  try {
    parsed = biscuitJs.parseToken(lib, token, keys);
  } catch (error) {
    // Perhaps the keys were rotated since they were fetched: fetch them once more.
    rootKeys = null;
    try {
      parsed = biscuitJs.parseToken(lib, token, await publicKeys());
    } catch {
      throw new FieldProblem(error.message);
    }
  }
  const { biscuit } = parsed;
  let narrowed = null;
  try {
    const claims = biscuitJs.authorityClaims(biscuit);
    const notes = [];
    if (biscuit.countBlocks() >= biscuitJs.MAX_BLOCKS) {
      throw new FieldProblem(`This key already has ${biscuit.countBlocks()} blocks; the server accepts at most ${biscuitJs.MAX_BLOCKS}.`);
    }
    if (biscuit.countBlocks() > 1) {
      notes.push(`This key is narrowed already (${biscuit.countBlocks() - 1} block(s) of checks): the new checks add to those.`);
    }
    if (claims.kind === "session") {
      notes.push("This is a session token: it ends when its session ends, whatever the narrowed key says.");
    }
    if (until && claims.expiresAt && until >= claims.expiresAt) {
      notes.push(`The key expires already at ${claims.expiresAt.toLocaleString()}: the later expiry you chose changes nothing.`);
    }
    const checks = biscuitJs.narrowingChecks({ readOnly, runId, expiry: until });
    const made = biscuitJs.attenuate(lib, biscuit, checks);
    narrowed = made.biscuit;
    if (made.token.length > biscuitJs.MAX_TOKEN_BYTES) {
      throw new FieldProblem(`The narrowed key would be ${made.token.length} bytes long; the server reads keys up to ${biscuitJs.MAX_TOKEN_BYTES}.`);
    }
    return { token: made.token, datalog: made.blockSource, blocks: made.blocks, claims, notes };
  } catch (error) {
    if (error instanceof Error) throw error;
    throw new Error(`The key could not be narrowed: ${biscuitJs.describeBiscuitError(error)}`);
  } finally {
    biscuit.free();
    narrowed?.free();
  }
}

function showNarrowed(box, made, { runId, readOnly }) {
  const key = h("code", { id: "narrowed-key", class: "secret", tabindex: "0" }, made.token);
  const copied = h("span", { class: "muted", role: "status" });
  const who = [made.claims.user && `${made.claims.user}'s`, made.claims.role && `(role ${made.claims.role})`].filter(Boolean).join(" ");
  const limits = [];
  if (readOnly) limits.push("It only reads, and follows runs.");
  if (runId) limits.push(`It works only on run ${runId}: it cannot list runs (a list names no run), create runs or upload media.`);
  limits.push("It cannot create or revoke keys, nor log out. Revoking the key it came from revokes it too.");
  replace(
    box,
    h(
      "div",
      { class: "notice ok", role: "status", dataset: { madeIn: "browser" } },
      h("strong", {}, "Narrowed in this browser. "),
      "The narrowed key never went to the server, and neither did the key it came from. ",
      who ? `It is ${who} key, with ${made.blocks - 1} block(s) of checks. ` : "",
      "Keep it like any key: whoever holds it can use it.",
    ),
    key,
    h(
      "div",
      { class: "row" },
      h("button", { id: "copy-narrowed-key", type: "button", class: "secondary", onclick: () => copy(made.token, key, copied) }, "Copy narrowed key"),
      copied,
    ),
    h("ul", {}, limits.map((text) => h("li", {}, text))),
    h("h3", { id: "narrowed-datalog-title" }, "The block appended (Datalog)"),
    h("pre", { id: "narrowed-datalog", class: "datalog", "aria-labelledby": "narrowed-datalog-title", tabindex: "0" }, made.datalog.trim()),
    h(
      "p",
      { class: "hint" },
      "For each request the server states time($t), operation($op) and, on a run, resource(\"run\", $id); every check of every block must hold.",
    ),
  );
}

// ---- helpers ------------------------------------------------------------------------------

function uuid(text) {
  const value = String(text).trim().toLowerCase();
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value) ? value : null;
}

/** Shows `message` under the field of `control` (see dom.js field()). */
function fieldError(control, message) {
  control.setAttribute("aria-invalid", "true");
  const box = control.closest(".field");
  const slot = box?.querySelector(".field-error");
  if (slot) slot.textContent = message;
}

function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** Copies `text`; without the async clipboard (no HTTPS), selects it for Ctrl+C. */
async function copy(text, element, status) {
  try {
    if (!navigator.clipboard?.writeText) throw new Error("no clipboard");
    await navigator.clipboard.writeText(text);
    status.textContent = "Copied.";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    let done = false;
    try {
      done = document.execCommand("copy");
    } catch {
      done = false;
    }
    status.textContent = done ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.";
  }
}

