// Blocks (#/admin/blocks): the rate limiter's blocks in force on this replica (a client
// that kept exceeding its limits: `ip:<address>` or `user:<name>`), and lifting one
// (DELETE /api/v1/admin/blocks/{key}; the ClientUnblocked event names the admin).

import { api, ApiError } from "../api.js";
import { errorBox } from "../app.js";
import { h, replace, when } from "../dom.js";

export async function render(main) {
  const status = h("div", { id: "blocks-status", class: "status", "aria-live": "polite" });
  const tableBox = h("div", { class: "table-wrap" });

  async function load() {
    try {
      const answer = await api("GET", "/api/v1/admin/blocks");
      replace(tableBox, blocksTable(answer.items || [], status));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && /rate limit/i.test(error.problem?.detail || "")) {
        // Rate limits are off on this server: nothing is ever blocked.
        replace(tableBox, h("p", { id: "blocks-empty", class: "notice" }, `No blocks: ${error.problem.detail}.`));
      } else {
        replace(tableBox, errorBox(error));
      }
    }
  }

  replace(
    main,
    h("h1", {}, "Blocks"),
    h(
      "p",
      { class: "muted" },
      "Clients the rate limiter blocked for exceeding their limits again and again, as this replica knows them. ",
      "A block ends by itself at its time; lift it to end it now.",
    ),
    h("div", { class: "row" }, h("button", { type: "button", class: "secondary", id: "blocks-refresh", onclick: load }, "Refresh")),
    status,
    tableBox,
  );
  await load();
}

function blocksTable(blocks, status) {
  const body = h("tbody", {});
  const emptyRow = () =>
    h("tr", { class: "empty" }, h("td", { colspan: 5 }, h("p", { id: "blocks-empty", class: "muted" }, "No client is blocked.")));
  for (const block of blocks) {
    body.append(
      blockRow(block, status, () => {
        if (!body.querySelector("tr[data-key]")) body.append(emptyRow());
      }),
    );
  }
  if (!blocks.length) body.append(emptyRow());
  return h(
    "table",
    { id: "blocks-table" },
    h("caption", { class: "visually-hidden" }, "Blocks in force"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Client"),
        h("th", { scope: "col" }, "Reason"),
        h("th", { scope: "col" }, "Until"),
        h("th", { scope: "col", class: "optional" }, "Offence"),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")),
      ),
    ),
    body,
  );
}

function blockRow(block, status, onRemoved) {
  const lift = h(
    "button",
    {
      type: "button",
      class: "secondary lift-block",
      "aria-label": `Lift the block of ${block.key}`,
      onclick: async () => {
        lift.disabled = true;
        try {
          // The key holds colons (ip:2001:db8::1): escaped, the server decodes it.
          await api("DELETE", `/api/v1/admin/blocks/${encodeURIComponent(block.key)}`);
          row.remove();
          onRemoved();
          replace(status, h("p", { class: "notice ok", role: "status" }, `Lifted the block of ${block.key}.`));
        } catch (error) {
          lift.disabled = false;
          replace(status, errorBox(error));
        }
      },
    },
    "Lift",
  );
  const row = h(
    "tr",
    { dataset: { key: block.key } },
    h("td", { class: "key mono" }, block.key),
    h("td", { class: "reason" }, block.reason),
    h("td", { class: "until" }, h("time", { datetime: block.until }, when(block.until))),
    h("td", { class: "offence optional" }, String(block.offence ?? "")),
    h("td", { class: "actions" }, lift),
  );
  return row;
}
