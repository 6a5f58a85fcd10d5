// The audit trail (#/admin/audit): filtered and paged (GET /api/v1/audit), exported as
// NDJSON (GET /api/v1/audit/export), and its hash chain verified in this page — the same
// checks as `aurora audit verify --file` (projections/src/read/audit/verify.rs):
// - every entry's hash: SHA-256 over the canonical JSON array [FORMAT, position, time,
//   actor, role, token_id, request_id, client_ip, action, resource_type, resource_id,
//   sequence, version, details, prev_hash] (entry.rs);
// - a stretch (an export by time range, `x-audit-chain: stretch`): every link, i.e. each
//   entry's prev_hash is the hash of the entry before and its seq follows on; the first
//   entry's own prev_hash is taken (a stretch starts mid-chain);
// - a selection (by actor, action or resource, `x-audit-chain: selection`): the entries'
//   hashes and their order only (the links cannot be checked: entries in between are not
//   there).
// An export carries no signed heads: those are checked by `aurora audit verify` against
// the database and the published heads, not from a file.
//
// The page's filters can come from the address: #/admin/audit?resource=<run id> (also
// actor, action, resource_type, from, to), so the run page can link to a run's trail.

import { api, check, headersFor, unauthorized } from "../api.js";
import { currentRoute, errorBox } from "../app.js";
import { field, h, replace, when } from "../dom.js";

const PAGE = 100;
const MAX_FILTER_LEN = 256;
const RESOURCE_TYPES = ["run", "user", "media", "client", "access"];

export async function render(main) {
  const initial = fromAddress(currentRoute().query);
  const actor = h("input", { id: "audit-actor", name: "actor", autocomplete: "off", maxlength: MAX_FILTER_LEN, value: initial.actor || "", placeholder: "e.g. alice" });
  const action = h("input", { id: "audit-action", name: "action", autocomplete: "off", maxlength: MAX_FILTER_LEN, value: initial.action || "", placeholder: "e.g. RunRequested" });
  const resourceType = h(
    "select",
    { id: "audit-resource-type", name: "resource_type" },
    h("option", { value: "" }, "any"),
    RESOURCE_TYPES.map((t) => h("option", { value: t, selected: t === initial.resource_type }, t)),
  );
  if (initial.resource_type && !RESOURCE_TYPES.includes(initial.resource_type)) {
    resourceType.append(h("option", { value: initial.resource_type, selected: true }, initial.resource_type));
  }
  const resource = h("input", { id: "audit-resource", name: "resource_id", autocomplete: "off", maxlength: MAX_FILTER_LEN, value: initial.resource_id || "", placeholder: "e.g. a run id" });
  const from = h("input", { id: "audit-from", name: "from", type: "datetime-local", step: 1, value: toLocalInput(initial.from) });
  const to = h("input", { id: "audit-to", name: "to", type: "datetime-local", step: 1, value: toLocalInput(initial.to) });
  const problems = h("div", { class: "problems", "aria-live": "polite" });
  const form = h(
    "form",
    { id: "audit-filters", class: "card", novalidate: true, role: "search", "aria-label": "Filter the audit trail" },
    h(
      "div",
      { class: "filters" },
      field("Actor", actor, "A username, anonymous, or a part of Aurora."),
      field("Action", action, "An event type, e.g. RunRequested, AccessRefused."),
      field("Resource type", resourceType),
      field("Resource id", resource, "e.g. a run id or a username."),
      field("From (local time)", from, "Inclusive."),
      field("To (local time)", to, "Exclusive."),
    ),
    problems,
    h(
      "div",
      { class: "row" },
      h("button", { id: "audit-filter", type: "submit" }, "Filter"),
      h("button", { id: "audit-clear", type: "button", class: "secondary", onclick: () => clear() }, "Clear"),
    ),
  );

  const exportLink = h("a", { id: "audit-export", class: "button secondary", href: "/api/v1/audit/export", download: "aurora-audit.ndjson" }, "Export (NDJSON)");
  const verifyButton = h("button", { id: "audit-verify", type: "button" }, "Verify the chain");
  const verifyResult = h("div", { id: "audit-verify-result", "aria-live": "polite" });
  const listStatus = h("p", { id: "audit-count", class: "muted", "aria-live": "polite" });
  const tableBox = h("div", { class: "table-wrap" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of the audit trail" });

  let filters = {};
  let cursors = [null];
  let page = 0;
  let verifying = null;

  function readFilters() {
    clearErrors(form);
    const out = {};
    let bad = false;
    for (const [input, name] of [
      [actor, "actor"],
      [action, "action"],
      [resource, "resource_id"],
    ]) {
      const value = input.value.trim();
      if (!value) continue;
      if (value.length > MAX_FILTER_LEN) {
        fieldError(input, `At most ${MAX_FILTER_LEN} characters.`);
        bad = true;
      }
      out[name] = value;
    }
    if (resourceType.value) out.resource_type = resourceType.value;
    const times = {};
    for (const [input, name] of [
      [from, "from"],
      [to, "to"],
    ]) {
      if (!input.value) {
        if (input.validity?.badInput) {
          fieldError(input, "Not a complete date and time.");
          bad = true;
        }
        continue;
      }
      const date = new Date(input.value);
      if (isNaN(date)) {
        fieldError(input, "Not a date and time.");
        bad = true;
        continue;
      }
      times[name] = date;
      out[name] = date.toISOString();
    }
    if (times.from && times.to && times.from >= times.to) {
      fieldError(to, "Must be after From.");
      bad = true;
    }
    return bad ? null : out;
  }

  function apply(next) {
    filters = next;
    cursors = [null];
    page = 0;
    const query = new URLSearchParams(filters);
    exportLink.href = `/api/v1/audit/export${query.size || [...query].length ? `?${query}` : ""}`;
    exportLink.download = `aurora-audit-${new Date().toISOString().slice(0, 10)}.ndjson`;
    // Keep the address in step (a link to share), without reloading the page.
    const address = new URLSearchParams();
    for (const [key, value] of Object.entries(filters)) address.set(key === "resource_id" ? "resource" : key, value);
    const hash = `#/admin/audit${[...address].length ? `?${address}` : ""}`;
    if (location.hash !== hash) history.replaceState(history.state, "", hash);
    replace(verifyResult);
    return load();
  }

  async function load() {
    const query = new URLSearchParams({ ...filters, limit: String(PAGE) });
    if (cursors[page]) query.set("cursor", cursors[page]);
    tableBox.setAttribute("aria-busy", "true");
    try {
      const answer = await api("GET", `/api/v1/audit?${query}`);
      const items = answer.items || [];
      cursors[page + 1] = answer.next_cursor || null;
      replace(tableBox, auditTable(items));
      const first = page * PAGE + 1;
      replace(listStatus, items.length ? `Entries ${first} to ${first + items.length - 1}${answer.next_cursor ? " (more on the next page)" : ""}, oldest first.` : page ? "No more entries." : "No entries match.");
      replace(
        pager,
        h("button", { type: "button", class: "secondary", id: "audit-prev", disabled: page === 0, onclick: () => goPage(page - 1) }, "← Previous"),
        h("span", { class: "muted" }, `Page ${page + 1}`),
        h("button", { type: "button", class: "secondary", id: "audit-next", disabled: !answer.next_cursor, onclick: () => goPage(page + 1) }, "Next →"),
      );
    } catch (error) {
      replace(tableBox, errorBox(error));
      replace(listStatus);
      replace(pager);
    } finally {
      tableBox.removeAttribute("aria-busy");
    }
  }

  function goPage(n) {
    page = Math.max(0, n);
    load();
  }

  function clear() {
    for (const input of [actor, action, resource, from, to]) input.value = "";
    resourceType.value = "";
    clearErrors(form);
    replace(problems);
    apply({});
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    replace(problems);
    const next = readFilters();
    if (!next) {
      form.querySelector("[aria-invalid]")?.focus();
      return;
    }
    apply(next);
  });

  verifyButton.addEventListener("click", async () => {
    if (verifying) return;
    const controller = new AbortController();
    verifying = controller;
    verifyButton.disabled = true;
    verifyButton.setAttribute("aria-busy", "true");
    const progress = h("p", { class: "loading" }, "Downloading the export…");
    replace(verifyResult, progress);
    verifyResult.dataset.result = "running";
    try {
      const query = new URLSearchParams(filters);
      const response = await fetch(`/api/v1/audit/export${[...query].length ? `?${query}` : ""}`, {
        credentials: "same-origin",
        headers: headersFor("GET", { accept: "application/x-ndjson" }),
        signal: controller.signal,
      });
      if (response.status === 401) unauthorized();
      await check(response);
      const header = response.headers.get("x-audit-chain");
      const selection = header ? header === "selection" : isSelective(filters);
      const buffer = await response.arrayBuffer();
      let text;
      try {
        text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(buffer);
      } catch {
        throw new Error("the export is not UTF-8 text");
      }
      progress.textContent = "Checking…";
      const verdict = await verifyExport(text, {
        selection,
        signal: controller.signal,
        progress: (n) => {
          progress.textContent = `Checking… ${n} entries`;
        },
      });
      showVerdict(verifyResult, verdict, { selection, bytes: buffer.byteLength, filters });
    } catch (error) {
      if (error?.name === "AbortError") return;
      verifyResult.dataset.result = "error";
      replace(verifyResult, errorBox(error));
    } finally {
      verifying = null;
      verifyButton.disabled = false;
      verifyButton.removeAttribute("aria-busy");
    }
  });

  replace(
    main,
    h("h1", {}, "Audit trail"),
    h(
      "p",
      { class: "muted" },
      "Every stored event, who did it in which role, from where and when, hash-chained so that an edited, removed or reordered entry shows.",
    ),
    form,
    h(
      "section",
      { class: "card", "aria-labelledby": "audit-chain-title" },
      h("h2", { id: "audit-chain-title" }, "Export and verify"),
      h(
        "p",
        { class: "muted" },
        "The export holds every entry the filters select. Filtered by time only, it is an unbroken stretch of the chain, ",
        "verified link by link; filtered by actor, action or resource, a selection, verified entry by entry. ",
        "Verifying downloads the export and checks it here, in this page, as ",
        h("code", {}, "aurora audit verify --file"),
        " does.",
      ),
      h("div", { class: "row" }, exportLink, verifyButton),
      verifyResult,
    ),
    listStatus,
    tableBox,
    pager,
  );
  await apply(readFilters() || {});
  return () => verifying?.abort();
}

// ---- the address's filters ----------------------------------------------------------------

function fromAddress(query) {
  const out = {};
  const text = (name) => {
    const value = query.get(name);
    return value && value.trim() ? value.trim().slice(0, MAX_FILTER_LEN) : undefined;
  };
  out.actor = text("actor");
  out.action = text("action");
  out.resource_id = text("resource") || text("resource_id");
  out.resource_type = text("resource_type") || text("type");
  out.from = text("from");
  out.to = text("to");
  return out;
}

/** An RFC 3339 time (or a datetime-local value) as a datetime-local value, local time. */
function toLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  if (isNaN(date)) return "";
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 19);
}

function isSelective(filters) {
  return ["actor", "action", "resource_type", "resource_id"].some((k) => filters[k]);
}

// ---- the table ----------------------------------------------------------------------------

function auditTable(entries) {
  const body = h("tbody", {});
  for (const entry of entries) body.append(entryRow(entry));
  if (!entries.length) body.append(h("tr", { class: "empty" }, h("td", { colspan: 5, class: "muted" }, "No entries.")));
  return h(
    "table",
    { id: "audit-table" },
    h("caption", { class: "visually-hidden" }, "Audit entries, oldest first"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Time"),
        h("th", { scope: "col" }, "Actor"),
        h("th", { scope: "col" }, "Action"),
        h("th", { scope: "col" }, "Resource"),
        h("th", { scope: "col" }, "Details"),
      ),
    ),
    body,
  );
}

function entryRow(entry) {
  const resourceText = `${entry.resource_type}/${entry.resource_id}`;
  const resource =
    entry.resource_type === "run"
      ? h("a", { href: `#/runs/${encodeURIComponent(entry.resource_id)}` }, resourceText)
      : resourceText;
  const refused = /Refused|Failed|Rejected|Denied/.test(entry.action);
  return h(
    "tr",
    { class: `audit-entry${refused ? " refused" : ""}`, dataset: { seq: String(entry.seq), action: entry.action } },
    h("td", { class: "time" }, h("time", { datetime: entry.time, title: entry.time }, when(entry.time))),
    h("td", { class: "actor" }, entry.actor, h("br", {}), h("span", { class: "muted small" }, entry.role)),
    h("td", { class: "action" }, entry.action),
    h("td", { class: "resource mono" }, resource),
    h(
      "td",
      { class: "details" },
      h(
        "details",
        {},
        h("summary", {}, summarize(entry.details) || "details"),
        h(
          "dl",
          { class: "meta" },
          meta("Entry", `#${entry.seq} (store position ${entry.position}, event ${entry.sequence}, v${entry.version})`),
          meta("Request", entry.request_id),
          entry.client_ip ? meta("From", entry.client_ip) : null,
          entry.token_id ? meta("Token", entry.token_id) : null,
          meta("Hash", entry.hash),
        ),
        h("pre", { class: "json" }, JSON.stringify(entry.details, null, 2)),
      ),
    ),
  );
}

function meta(term, value) {
  return [h("dt", {}, term), h("dd", { class: "mono" }, value)];
}

/** The details' top-level scalars, short: "reason=quota, status=403". */
function summarize(details) {
  if (details === null || typeof details !== "object") return details === undefined ? "" : String(details);
  const parts = [];
  for (const [key, value] of Object.entries(details)) {
    if (value === null || typeof value === "object") continue;
    parts.push(`${key}=${value}`);
    if (parts.join(", ").length > 90) break;
  }
  const text = parts.join(", ");
  return text.length > 100 ? `${text.slice(0, 99)}…` : text;
}

// ---- the verdict --------------------------------------------------------------------------

function showVerdict(box, verdict, { selection, bytes, filters }) {
  const mode = selection ? "a selection" : "a stretch";
  const checked = selection
    ? "each entry's hash over its content, and that the entries come in chain order (the links between them cannot be checked: the entries in between are not in a selection)"
    : "each entry's hash over its content, and every link: each entry's prev_hash is the hash of the entry before it, numbered one after it";
  const same = `the same checks as aurora audit verify --file${selection ? " --selection" : ""}`;
  const signed =
    "An export carries no signed heads, so none were checked here: aurora audit verify (on the server, without --file) checks the published, signed heads.";
  const scope = Object.keys(filters).length ? "the entries the filters select" : "the whole trail";
  box.dataset.entries = String(verdict.entries);
  box.dataset.mode = selection ? "selection" : "stretch";
  if (verdict.error) {
    box.dataset.result = "broken";
    box.dataset.firstBroken = verdict.line ? `line ${verdict.line}` : "";
    replace(
      box,
      h(
        "div",
        { class: "notice error", role: "alert" },
        h("strong", {}, "Not a valid export. "),
        verdict.error,
        ` (${verdict.entries} entries checked before it.)`,
      ),
    );
    return;
  }
  if (verdict.finding) {
    const f = verdict.finding;
    box.dataset.result = "broken";
    box.dataset.firstBroken = String(f.seq);
    box.dataset.kind = f.kind;
    replace(
      box,
      h(
        "div",
        { class: "notice error", role: "alert" },
        h("strong", {}, `The chain is broken at entry ${f.seq} (${f.kind.replaceAll("_", " ")}). `),
        `${f.detail}. `,
        `${verdict.entries} entries before it checked out.`,
      ),
      h("p", { class: "hint" }, `Checked in this page: ${checked}; ${same}. ${signed}`),
    );
    return;
  }
  box.dataset.result = "ok";
  delete box.dataset.firstBroken;
  delete box.dataset.kind;
  replace(
    box,
    h(
      "div",
      { class: "notice ok", role: "status" },
      h("strong", {}, verdict.entries ? `The chain holds: ${verdict.entries} entries checked. ` : "Nothing to check: the export is empty. "),
      verdict.head ? `Export of ${scope} (${mode}, ${bytes} bytes), last entry #${verdict.head.seq}, hash ` : `Export of ${scope} (${mode}).`,
      verdict.head ? h("code", {}, verdict.head.hash) : null,
      verdict.head ? "." : null,
    ),
    h("p", { class: "hint" }, `Checked in this page: ${checked}; ${same}. ${signed}`),
  );
}

// ---- verifying an export (projections/src/read/audit/{entry,verify}.rs) -------------------

/** The entry format's version, hashed with every entry (audit/mod.rs FORMAT). */
const FORMAT = "aurora-audit/1";
/** Entries the verifier looks ahead to tell a reordering from a removal. */
const LOOK_AHEAD = 64;

/**
 * Checks an export as `aurora audit verify --file [--selection]` does: the lines in order,
 * blank lines skipped, each an AuditEntry (a line that is not is an error: `{error,
 * line}`), fed to the verifier until its first finding. Resolves to {entries, head,
 * finding} like the CLI's report (or {error, line, entries}).
 */
export async function verifyExport(text, { selection = false, signal, progress } = {}) {
  const verifier = new Verifier(selection);
  const lines = text.split("\n");
  let fed = 0;
  for (let n = 0; n < lines.length; n++) {
    if (signal?.aborted) throw new DOMException("aborted", "AbortError");
    let line = lines[n];
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (n === lines.length - 1 && line === "") break; // the text's final newline
    if (RUST_BLANK.test(line)) continue;
    let entry;
    try {
      entry = parseEntry(line);
    } catch (error) {
      // As the CLI: an error at once (entries still in the look-ahead stay unchecked).
      return { error: `line ${n + 1} is not an audit entry: ${error.message}`, line: n + 1, entries: verifier.entries };
    }
    if (!(await verifier.push(entry))) break;
    fed++;
    if (progress && fed % 2000 === 0) {
      progress(verifier.entries);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  await verifier.drain();
  return verifier.report();
}

/** Rust's `str::trim().is_empty()`: only Unicode White_Space. */
const RUST_BLANK = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

class Verifier {
  constructor(selection) {
    this.selection = selection;
    this.previous = null;
    this.pending = [];
    this.entries = 0;
    this.finding = null;
  }

  /** Feeds the next entry; false once a problem was found (stop feeding). */
  async push(entry) {
    if (this.finding) return false;
    entry.computed = contentHash(entry); // a promise: hashed while the look-ahead fills
    this.pending.push(entry);
    if (this.pending.length > LOOK_AHEAD) await this.checkNext();
    return !this.finding;
  }

  async drain() {
    while (!this.finding && this.pending.length) await this.checkNext();
  }

  report() {
    return {
      entries: this.entries,
      head: this.previous ? { seq: this.previous.seq, hash: this.previous.hash } : null,
      finding: this.finding,
    };
  }

  async checkNext() {
    const entry = this.pending.shift();
    if (!entry) return;
    let expectedHash;
    let expectedSeq;
    if (this.previous) {
      expectedHash = this.previous.hash;
      expectedSeq = this.previous.seqBig + 1n;
    } else {
      // A part of a chain (an export of a range): the first entry's own.
      expectedHash = entry.prev_hash;
      expectedSeq = entry.seqBig;
    }
    const finding = (kind, detail) => ({ kind, seq: entry.seq, detail });
    if ((await entry.computed) !== entry.hash) {
      this.finding = finding("changed", `entry ${entry.seq} does not match its hash: it was edited`);
      return;
    }
    if (this.selection) {
      if (this.previous && entry.seqBig <= this.previous.seqBig) {
        this.finding = finding("reordered", `entry ${entry.seq} comes after entry ${expectedSeq - 1n}`);
        return;
      }
      this.entries++;
      this.previous = entry;
      return;
    }
    if (entry.prev_hash !== expectedHash) {
      const later = this.pending.some((e) => e.prev_hash === expectedHash);
      if (later || entry.seqBig < expectedSeq) {
        this.finding = finding(
          "reordered",
          `entry ${entry.seq} is out of place: the chain expects entry ${expectedSeq} here, which comes later`,
        );
      } else if (entry.seqBig > expectedSeq) {
        this.finding = finding("removed", `entries ${expectedSeq} to ${entry.seqBig - 1n} are missing`);
      } else {
        this.finding = finding(
          "removed",
          `the chain breaks before entry ${entry.seq}: an entry before it was removed, or edited and its hash recomputed`,
        );
      }
      return;
    }
    if (entry.seqBig !== expectedSeq) {
      this.finding = finding("reordered", `entry ${entry.seq} is numbered out of order (expected ${expectedSeq})`);
      return;
    }
    this.entries++;
    this.previous = entry;
  }
}

// -- An entry as serde reads it: AuditEntry, #[serde(deny_unknown_fields)] -----------------

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

const ENTRY_FIELDS = {
  seq: "i64",
  position: "i64",
  time: "string",
  actor: "string",
  role: "string",
  token_id: "option",
  request_id: "string",
  client_ip: "option",
  action: "string",
  resource_type: "string",
  resource_id: "string",
  sequence: "i64",
  version: "string",
  details: "value",
  prev_hash: "string",
  hash: "string",
};

/** Parses one line into an entry: {seq (text), seqBig, position, …, details (raw value)}. */
export function parseEntry(line) {
  const parser = new JsonParser(line);
  const value = parser.document();
  if (!(value instanceof JsonObject)) throw new Error(`invalid type: ${kindOf(value)}, expected struct AuditEntry`);
  if (value.duplicates.size) throw new Error(`duplicate field \`${[...value.duplicates][0]}\``);
  const entry = {};
  for (const [key, v] of value.map) {
    const type = ENTRY_FIELDS[key];
    if (!type) throw new Error(`unknown field \`${key}\``);
    switch (type) {
      case "i64": {
        if (!(v instanceof JsonNumber) || !v.isInteger()) throw new Error(`invalid type for \`${key}\`: ${kindOf(v)}, expected i64`);
        const big = BigInt(v.raw);
        if (big < I64_MIN || big > I64_MAX || (v.raw.startsWith("-") && big === 0n)) {
          throw new Error(`invalid value for \`${key}\`: ${v.raw}, expected i64`);
        }
        entry[key] = big.toString();
        if (key === "seq") entry.seqBig = big;
        break;
      }
      case "string":
        if (typeof v !== "string") throw new Error(`invalid type for \`${key}\`: ${kindOf(v)}, expected a string`);
        entry[key] = v;
        break;
      case "option":
        if (v !== null && typeof v !== "string") throw new Error(`invalid type for \`${key}\`: ${kindOf(v)}, expected a string or null`);
        entry[key] = v;
        break;
      default:
        entry[key] = v;
    }
  }
  for (const [key, type] of Object.entries(ENTRY_FIELDS)) {
    if (!(key in entry)) {
      if (type === "option") entry[key] = null;
      else throw new Error(`missing field \`${key}\``);
    }
  }
  return entry;
}

function kindOf(v) {
  if (v === null) return "null";
  if (v instanceof JsonObject) return "map";
  if (Array.isArray(v)) return "sequence";
  if (v instanceof JsonNumber) return v.isInteger() ? "integer" : "floating point";
  return typeof v === "string" ? "string" : "boolean";
}

/** SHA-256 (hex) of the entry's content and prev_hash, as entry.rs `hash_over` writes it. */
export function contentHash(entry) {
  const text = (v) => (v === null ? "null" : JSON.stringify(v));
  const parts = [
    text(FORMAT),
    entry.position,
    text(entry.time),
    text(entry.actor),
    text(entry.role),
    text(entry.token_id),
    text(entry.request_id),
    text(entry.client_ip),
    text(entry.action),
    text(entry.resource_type),
    text(entry.resource_id),
    entry.sequence,
    text(entry.version),
    canonical(entry.details),
    text(entry.prev_hash),
  ];
  return sha256Hex(`[${parts.join(",")}]`);
}

// -- JSON kept as serde_json reads it: numbers as their text, objects with their keys --------

class JsonNumber {
  constructor(raw) {
    this.raw = raw;
  }
  isInteger() {
    return !/[.eE]/.test(this.raw);
  }
}

class JsonObject {
  constructor() {
    this.map = new Map();
    this.duplicates = new Set();
  }
}

class JsonParser {
  constructor(text) {
    this.text = text;
    this.i = 0;
  }
  fail(message) {
    throw new Error(`${message} at column ${this.i + 1}`);
  }
  space() {
    while (this.i < this.text.length) {
      const c = this.text.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }
  document() {
    this.space();
    const value = this.value(0);
    this.space();
    if (this.i < this.text.length) this.fail("trailing characters");
    return value;
  }
  value(depth) {
    if (depth > 128) this.fail("recursion limit exceeded");
    const c = this.text[this.i];
    if (c === "{") return this.object(depth);
    if (c === "[") return this.array(depth);
    if (c === '"') return this.string();
    if (c === "-" || (c >= "0" && c <= "9")) return this.number();
    for (const [word, value] of [
      ["true", true],
      ["false", false],
      ["null", null],
    ]) {
      if (this.text.startsWith(word, this.i)) {
        this.i += word.length;
        return value;
      }
    }
    return this.fail(c === undefined ? "EOF while parsing a value" : "expected value");
  }
  object(depth) {
    const out = new JsonObject();
    this.i++;
    this.space();
    if (this.text[this.i] === "}") {
      this.i++;
      return out;
    }
    for (;;) {
      this.space();
      if (this.text[this.i] !== '"') this.fail("key must be a string");
      const key = this.string();
      this.space();
      if (this.text[this.i] !== ":") this.fail("expected `:`");
      this.i++;
      this.space();
      const value = this.value(depth + 1);
      if (out.map.has(key)) out.duplicates.add(key);
      out.map.set(key, value);
      this.space();
      const c = this.text[this.i++];
      if (c === "}") return out;
      if (c !== ",") this.fail("expected `,` or `}`");
    }
  }
  array(depth) {
    const out = [];
    this.i++;
    this.space();
    if (this.text[this.i] === "]") {
      this.i++;
      return out;
    }
    for (;;) {
      this.space();
      out.push(this.value(depth + 1));
      this.space();
      const c = this.text[this.i++];
      if (c === "]") return out;
      if (c !== ",") this.fail("expected `,` or `]`");
    }
  }
  string() {
    const start = this.i;
    this.i++;
    for (;;) {
      const c = this.text[this.i];
      if (c === undefined) this.fail("EOF while parsing a string");
      if (c === "\\") this.i += 2;
      else if (c === '"') break;
      else this.i++;
    }
    this.i++;
    let value;
    try {
      value = JSON.parse(this.text.slice(start, this.i));
    } catch {
      this.i = start;
      this.fail("invalid string (escape or control character)");
    }
    if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(value)) {
      this.i = start;
      this.fail("lone surrogate in a string");
    }
    return value;
  }
  number() {
    const match = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(this.text.slice(this.i));
    if (!match) this.fail("invalid number");
    this.i += match[0].length;
    const number = new JsonNumber(match[0]);
    canonicalNumber(number.raw); // out of range: an error, as in serde_json
    return number;
  }
}

/** serde_json's compact text of a value (keys sorted by code point: a BTreeMap's order). */
export function canonical(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "string") return JSON.stringify(value);
  if (value instanceof JsonNumber) return canonicalNumber(value.raw);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value instanceof JsonObject) {
    const keys = [...value.map.keys()].sort(byCodePoint);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value.map.get(k))}`).join(",")}}`;
  }
  throw new Error("not a JSON value");
}

function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

/**
 * A number as serde_json (float_roundtrip, no arbitrary_precision) reads then writes it:
 * integers within u64 (positive) or i64 (negative) as integers; anything else, and -0, as
 * the nearest f64 printed the way ryu prints it (1e16 → "1e16", 100.0 → "100.0").
 */
export function canonicalNumber(raw) {
  if (!/[.eE]/.test(raw)) {
    const big = BigInt(raw);
    const negative = raw.startsWith("-");
    if (!negative && big <= U64_MAX) return big.toString();
    if (negative && big !== 0n && big >= I64_MIN) return big.toString();
  }
  const x = Number(raw);
  if (!Number.isFinite(x)) throw new Error("number out of range");
  return ryu(x);
}

function ryu(x) {
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  const [mantissa, exponent] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const length = digits.length;
  const kk = Number(exponent) + 1; // 10^(kk-1) <= |x| < 10^kk
  const k = kk - length;
  let out;
  if (k >= 0 && kk <= 16) out = `${digits}${"0".repeat(k)}.0`;
  else if (kk > 0 && kk <= 16) out = `${digits.slice(0, kk)}.${digits.slice(kk)}`;
  else if (kk > -5 && kk <= 0) out = `0.${"0".repeat(-kk)}${digits}`;
  else if (length === 1) out = `${digits}e${kk - 1}`;
  else out = `${digits[0]}.${digits.slice(1)}e${kk - 1}`;
  return sign + out;
}

// -- SHA-256: WebCrypto, or (outside a secure context, where crypto.subtle is missing) here --

const encoder = new TextEncoder();

async function sha256Hex(text) {
  const bytes = encoder.encode(text);
  const subtle = globalThis.crypto?.subtle;
  const digest = subtle ? new Uint8Array(await subtle.digest("SHA-256", bytes)) : sha256(bytes);
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** SHA-256 of `bytes` (FIPS 180-4), for pages served without HTTPS. */
export function sha256(bytes) {
  const length = bytes.length;
  const blocks = Math.ceil((length + 9) / 64);
  const data = new Uint8Array(blocks * 64);
  data.set(bytes);
  data[length] = 0x80;
  const view = new DataView(data.buffer);
  view.setUint32(data.length - 8, Math.floor(length / 0x20000000));
  view.setUint32(data.length - 4, (length * 8) >>> 0);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  for (let b = 0; b < blocks; b++) {
    for (let t = 0; t < 16; t++) w[t] = view.getUint32(b * 64 + t * 4);
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15];
      const y = w[t - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
    }
    let [a, bb, c, d, e, f, g, hh] = H;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[t] + w[t]) >>> 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & bb) ^ (a & c) ^ (bb & c);
      const t2 = (S0 + maj) >>> 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = bb;
      bb = a;
      a = (t1 + t2) >>> 0;
    }
    H[0] += a;
    H[1] += bb;
    H[2] += c;
    H[3] += d;
    H[4] += e;
    H[5] += f;
    H[6] += g;
    H[7] += hh;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) outView.setUint32(i * 4, H[i]);
  return out;
}

// ---- helpers ------------------------------------------------------------------------------

function fieldError(control, message) {
  control.setAttribute("aria-invalid", "true");
  const slot = control.closest(".field")?.querySelector(".field-error");
  if (slot) slot.textContent = message;
}

function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}
