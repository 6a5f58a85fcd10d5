// Small sparkline charts: an SVG polyline of the last values, built with createElementNS
// (no markup, no inline styles: the look is in app.css, `.chart …`), with the current
// value as a figure and a label, for the health page.

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 120;
const HEIGHT = 40;

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  return el;
}

/**
 * A sparkline card: chart({id, label, unit, digits, points, floor}) → {element, push(v),
 * set(v)}. `push` adds a value (null: a gap, e.g. no sample) and redraws; the scale runs
 * from `floor` (0 by default) to the largest value shown. Keeps the last `points` values.
 */
export function chart({ id, label, unit = "", digits = 1, points = 60, floor = 0, hint = null }) {
  const values = [];
  const valueText = h("span", { class: "value" }, "—");
  const figure = h("p", { class: "figure", dataset: { value: "" } }, valueText, unit ? h("span", { class: "unit" }, ` ${unit}`) : null);
  const title = svg("title");
  title.textContent = `${label}: no samples yet`;
  const lines = svg("g", { class: "lines" });
  const base = svg("line", { class: "baseline", x1: 0, y1: HEIGHT - 1, x2: WIDTH, y2: HEIGHT - 1, "vector-effect": "non-scaling-stroke" });
  const picture = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": `${label}, recent values`,
    focusable: "false",
  });
  picture.append(title, base, lines);
  const scale = h("span", { class: "scale muted small" });
  const element = h(
    "figure",
    { class: "chart-card card", id, "aria-labelledby": `${id}-label` },
    h("figcaption", { id: `${id}-label`, class: "chart-label" }, label),
    figure,
    h("div", { class: "chart" }, picture),
    h("p", { class: "hint" }, scale, hint ? [" ", hint] : null),
  );

  const format = (v) => (v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toFixed(digits));

  function draw() {
    const known = values.filter((v) => v !== null && Number.isFinite(v));
    const top = Math.max(floor + 1e-9, ...known);
    const low = Math.min(floor, ...known);
    const step = WIDTH / Math.max(1, points - 1);
    const offset = points - values.length;
    const segments = [];
    let current = [];
    values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        if (current.length) segments.push(current);
        current = [];
        return;
      }
      const x = (offset + i) * step;
      const y = HEIGHT - 2 - ((v - low) / (top - low || 1)) * (HEIGHT - 4);
      current.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    });
    if (current.length) segments.push(current);
    // One polyline per unbroken run of samples: a missing sample is a gap.
    lines.replaceChildren(
      ...segments.map((run) =>
        svg("polyline", {
          points: run.length === 1 ? `${run[0]} ${run[0]}` : run.join(" "),
          "vector-effect": "non-scaling-stroke",
        }),
      ),
    );
    const now = values[values.length - 1];
    valueText.textContent = format(now);
    figure.dataset.value = now === null || now === undefined ? "" : String(now);
    title.textContent = known.length
      ? `${label}: now ${format(now)} ${unit}, range ${format(Math.min(...known))} to ${format(Math.max(...known))} over the last ${values.length} samples`
      : `${label}: no samples yet`;
    scale.textContent = known.length ? `max ${format(top)} ${unit}`.trim() : "";
  }

  return {
    element,
    push(value) {
      values.push(value === undefined ? null : value);
      while (values.length > points) values.shift();
      draw();
    },
  };
}
