// Users (#/admin/users): every user, by username, a page at a time; an admin changes a
// user's role or tier, or disables / enables them (PATCH /api/v1/users/{id}). A new role
// or disabling revokes every token the user holds; an admin cannot demote or disable
// themselves (the server answers 409).

import { api } from "../api.js";
import { errorBox } from "../app.js";
import { field, h, replace, when } from "../dom.js";

/** The domain's enums (domain/src/user/values.rs Role, Tier), in their order. */
const ROLES = ["admin", "user", "viewer"];
const TIERS = ["free", "pro", "enterprise"];
const PAGE = 50;
const MAX_REASON_LEN = 1000;
/** A select applies its value after this pause, so that arrowing through it on the
 *  keyboard (which fires `change` on some platforms) sends one change, not several. */
const SETTLE_MS = 400;

export async function render(main, _params, session) {
  const status = h("div", { id: "users-status", class: "status", "aria-live": "polite" });
  const tableBox = h("div", { class: "table-wrap" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of users" });
  const reason = h("input", {
    id: "user-reason",
    name: "reason",
    maxlength: MAX_REASON_LEN,
    autocomplete: "off",
    placeholder: "e.g. upgraded by support",
  });
  const timers = new Set();
  const cursors = [null]; // cursors[i]: the cursor of page i
  let page = 0;

  async function load() {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (cursors[page]) query.set("cursor", cursors[page]);
    try {
      const answer = await api("GET", `/api/v1/users?${query}`);
      cursors[page + 1] = answer.next_cursor || null;
      const context = { status, reason, me: session?.user?.username, timers };
      replace(tableBox, usersTable(answer.items || [], context));
      replace(
        pager,
        h("button", { type: "button", class: "secondary", id: "users-prev", disabled: page === 0, onclick: () => go(page - 1) }, "← Previous"),
        h("span", { class: "muted" }, `Page ${page + 1}`),
        h("button", { type: "button", class: "secondary", id: "users-next", disabled: !answer.next_cursor, onclick: () => go(page + 1) }, "Next →"),
      );
    } catch (error) {
      replace(tableBox, errorBox(error));
      replace(pager);
    }
  }

  function go(n) {
    page = Math.max(0, n);
    load();
  }

  replace(
    main,
    h("h1", {}, "Users"),
    h(
      "p",
      { class: "muted" },
      "A new role, or disabling, revokes every token the user holds: they sign in again. ",
      "You cannot demote or disable yourself; ask another admin.",
    ),
    h("div", { class: "card" }, field("Reason for changes (optional, recorded in the audit trail)", reason)),
    status,
    tableBox,
    pager,
  );
  await load();
  return () => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
  };
}

function usersTable(users, context) {
  const body = h("tbody", {});
  users.forEach((user, i) => body.append(userRow(user, i, context)));
  if (!users.length) body.append(h("tr", { class: "empty" }, h("td", { colspan: 6, class: "muted" }, "No users.")));
  return h(
    "table",
    { id: "users-table" },
    h("caption", { class: "visually-hidden" }, "Users"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "User"),
        h("th", { scope: "col" }, "Role"),
        h("th", { scope: "col" }, "Tier"),
        h("th", { scope: "col" }, "Status"),
        h("th", { scope: "col", class: "optional" }, "Registered"),
        h("th", { scope: "col" }, "Change"),
      ),
    ),
    body,
  );
}

function statusOf(user) {
  if (user.deleted) return "deleted";
  return user.disabled ? "disabled" : "active";
}

function options(values, current) {
  return values.map((v) => h("option", { value: v, selected: v === current }, v));
}

function userRow(initial, index, { status, reason, me, timers }) {
  let user = initial;
  const self = user.username === me;
  const ids = { role: `role-select-${index}`, tier: `tier-select-${index}` };
  const roleCell = h("td", { class: "role" });
  const tierCell = h("td", { class: "tier" });
  const statusCell = h("td", { class: "status" });
  const roleSelect = h("select", { id: ids.role, class: "role-select", name: "role" }, options(ROLES, user.role));
  const tierSelect = h("select", { id: ids.tier, class: "tier-select", name: "tier" }, options(TIERS, user.tier));
  const toggle = h("button", { type: "button" });
  const row = h(
    "tr",
    { dataset: { username: user.username, userId: user.id } },
    h("th", { scope: "row", class: "username" }, user.username, self ? [" ", h("span", { class: "badge" }, "you")] : null),
    roleCell,
    tierCell,
    statusCell,
    h("td", { class: "created optional" }, h("time", { datetime: user.created_at }, when(user.created_at))),
    h(
      "td",
      { class: "change" },
      h(
        "div",
        { class: "controls" },
        h("label", { for: ids.role, class: "visually-hidden" }, `Role of ${user.username}`),
        roleSelect,
        h("label", { for: ids.tier, class: "visually-hidden" }, `Tier of ${user.username}`),
        tierSelect,
        toggle,
      ),
    ),
  );

  function show() {
    replace(roleCell, user.role);
    replace(tierCell, user.tier);
    const state = statusOf(user);
    replace(statusCell, h("span", { class: `badge ${state}` }, state));
    row.dataset.status = state;
    roleSelect.value = user.role;
    tierSelect.value = user.tier;
    toggle.className = user.disabled ? "secondary enable-user" : "danger disable-user";
    toggle.textContent = user.disabled ? "Enable" : "Disable";
    toggle.setAttribute("aria-label", `${user.disabled ? "Enable" : "Disable"} ${user.username}`);
    // The server refuses an admin demoting or disabling themselves: say so up front.
    roleSelect.disabled = user.deleted || self;
    toggle.disabled = user.deleted || (self && !user.disabled);
    tierSelect.disabled = user.deleted;
    if (self) {
      roleSelect.title = "You cannot change your own role";
      toggle.title = "You cannot disable yourself";
    }
  }

  async function change(body, describe, control) {
    const why = reason.value.trim();
    if (why) {
      if ([...why].length > MAX_REASON_LEN) {
        replace(status, errorBox(new Error(`The reason is longer than ${MAX_REASON_LEN} characters.`)));
        return;
      }
      body.reason = why;
    }
    const controls = [roleSelect, tierSelect, toggle];
    for (const c of controls) c.disabled = true;
    row.setAttribute("aria-busy", "true");
    try {
      const answer = await api("PATCH", `/api/v1/users/${encodeURIComponent(user.id || user.username)}`, body);
      const before = user;
      user = { ...user, ...answer };
      replace(status, h("p", { class: "notice ok", role: "status" }, describe(before, user)));
    } catch (error) {
      replace(status, errorBox(error));
    } finally {
      row.removeAttribute("aria-busy");
      show();
      control?.focus();
    }
  }

  function settle(select, key) {
    let timer = null;
    select.addEventListener("change", () => {
      clearTimeout(timer);
      timers.delete(timer);
      timer = setTimeout(() => {
        timers.delete(timer);
        const value = select.value;
        if (value === user[key]) return;
        const describe =
          key === "role"
            ? (_, now) => `${now.username} is now ${now.role}. Their tokens were revoked: they sign in again.`
            : (before, now) => `${now.username}'s tier is now ${now.tier} (was ${before.tier}).`;
        change({ [key]: value }, describe, select);
      }, SETTLE_MS);
      timers.add(timer);
    });
  }
  settle(roleSelect, "role");
  settle(tierSelect, "tier");

  toggle.addEventListener("click", () => {
    const disable = !user.disabled;
    change(
      { disabled: disable },
      (_, now) =>
        now.disabled
          ? `${now.username} is disabled. Their tokens were revoked; they cannot sign in until enabled.`
          : `${now.username} is enabled again: they can sign in.`,
      toggle,
    );
  });

  show();
  return row;
}
