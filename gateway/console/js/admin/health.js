// Health (#/admin/health): the replica's dependencies and read models (GET /health, every
// 10 s), and live figures polled every 2 s while the page is open: requests/s (the rate of
// the request counter of GET /api/v1/health/metrics), runs active and transcode speed
// (the Prometheus series aurora_runs_active and aurora_transcode_fps of GET /metrics), CPU.
// Figures are those of the replica that answered: behind a load balancer, successive polls
// may reach different replicas (a counter going backwards is skipped, not drawn).

import { api, check, headersFor } from "../api.js";
import { errorBox } from "../app.js";
import { bytes, h, replace, when } from "../dom.js";
import { chart } from "../chart.js";

const POLL_MS = 2000;
const HEALTH_EVERY = 5; // polls: /health every 10 s
const PROMETHEUS_RETRY = 15; // polls before trying an unreachable /metrics again

export async function render(main) {
  const summary = h("div", { id: "health-summary", "aria-live": "polite" });
  const services = h("div", { class: "table-wrap" });
  const lags = h("div", { class: "table-wrap" });
  const healthProblem = h("div", {});
  const vitalsProblem = h("div", { "aria-live": "polite" });
  const figures = h("dl", { id: "health-figures", class: "figures" });
  const sources = h("p", { class: "hint", id: "health-sources" });

  const charts = {
    requests: chart({ id: "chart-requests", label: "Requests", unit: "req/s", digits: 1 }),
    runs: chart({ id: "chart-runs", label: "Runs active", unit: "runs", digits: 0 }),
    fps: chart({ id: "chart-fps", label: "Transcode speed", unit: "fps", digits: 1, hint: "Mean of the transcodes finished since the last sample (each one's last report)." }),
    cpu: chart({ id: "chart-cpu", label: "CPU", unit: "% of a core", digits: 1 }),
  };

  const heading = h("h1", {}, "Health");
  replace(
    main,
    heading,
    summary,
    healthProblem,
    h("h2", { id: "live-title" }, "Live figures"),
    h("p", { class: "muted" }, `Sampled every ${POLL_MS / 1000} s while this page is open.`),
    vitalsProblem,
    h("div", { class: "grid charts", role: "group", "aria-labelledby": "live-title" }, Object.values(charts).map((c) => c.element)),
    figures,
    sources,
    h("h2", { id: "services-title" }, "Services"),
    services,
    h("h2", { id: "lags-title" }, "Read models"),
    lags,
  );

  let stopped = false;
  let timer = null;
  let tick = 0;
  let lastHealth = null;
  let previous = null; // the last sample: {at, requests, fpsSum, fpsCount}
  let prometheusDown = 0; // polls left before trying /metrics again

  async function refreshHealth() {
    try {
      lastHealth = await getHealth();
      replace(healthProblem);
      showHealth(lastHealth, { summary, services, lags });
    } catch (error) {
      replace(healthProblem, errorBox(error));
    }
  }

  async function sample() {
    const at = performance.now();
    const [vitals, prometheus] = await Promise.all([
      api("GET", "/api/v1/health/metrics").then(
        (v) => ({ ok: v }),
        (error) => ({ error }),
      ),
      prometheusDown > 0 ? Promise.resolve(null) : getPrometheus().catch(() => null),
    ]);
    if (stopped) return;
    if (prometheusDown > 0) prometheusDown--;
    else if (!prometheus) prometheusDown = PROMETHEUS_RETRY;

    const v = vitals.ok;
    replace(vitalsProblem, vitals.error ? errorBox(vitals.error) : null);
    const requests = v ? v.requests?.total : prometheus ? sum(prometheus, "aurora_http_requests_total") : null;
    const fpsSum = prometheus ? sum(prometheus, "aurora_transcode_fps_sum") : null;
    const fpsCount = prometheus ? sum(prometheus, "aurora_transcode_fps_count") : null;
    const now = { at, requests, fpsSum, fpsCount };

    // Requests/s: the counter's rate between two samples (the server's one-minute rate
    // for the first one).
    let rate = null;
    if (previous && previous.requests !== null && requests !== null && requests !== undefined) {
      const seconds = (at - previous.at) / 1000;
      const delta = requests - previous.requests;
      if (seconds > 0 && delta >= 0) rate = delta / seconds;
    } else if (!previous && v) {
      rate = v.requests?.per_second ?? null;
    }
    charts.requests.push(rate);

    const runs = prometheus
      ? sum(prometheus, "aurora_runs_active")
      : lastHealth?.services?.actors?.active_runs ?? null;
    charts.runs.push(runs);

    let fps = null;
    if (previous && fpsCount !== null && previous.fpsCount !== null) {
      const count = fpsCount - previous.fpsCount;
      const total = fpsSum - previous.fpsSum;
      if (count > 0 && total >= 0) fps = total / count;
      else if (count === 0) fps = previous.fps ?? (fpsCount > 0 ? fpsSum / fpsCount : null);
    } else if (fpsCount) {
      fps = fpsSum / fpsCount;
    }
    now.fps = fps;
    charts.fps.push(fps);

    charts.cpu.push(v ? v.cpu?.percent ?? null : null);
    previous = now;

    showFigures(figures, v);
    replace(
      sources,
      v ? "Requests and CPU from /api/v1/health/metrics. " : "",
      prometheus
        ? "Runs active and transcode speed from /metrics."
        : "The Prometheus endpoint /metrics is not reachable from here (it is usually not published outside the cluster): runs active come from /health, transcode speed is unavailable.",
    );
  }

  async function loop() {
    // Left before the first samples came back (no stop function yet): stop by itself.
    if (!heading.isConnected) stopped = true;
    if (stopped) return;
    if (tick % HEALTH_EVERY === 0) await refreshHealth();
    if (stopped) return;
    await sample();
    tick++;
    if (!heading.isConnected) stopped = true;
    if (!stopped) timer = setTimeout(loop, POLL_MS);
  }

  await loop();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** GET /health: 200 when healthy or degraded, 503 with the same body when unhealthy. */
async function getHealth() {
  const response = await fetch("/health", { credentials: "same-origin", headers: headersFor("GET") });
  if (response.status === 503) {
    try {
      return await response.json();
    } catch {
      // Not the health document (a proxy's 503): an error like any other.
    }
  }
  await check(response);
  return response.json();
}

/** GET /metrics (OpenMetrics text) as [{name, labels, value}], or null. */
async function getPrometheus() {
  const response = await fetch("/metrics", {
    credentials: "same-origin",
    headers: { accept: "application/openmetrics-text, text/plain;q=0.5" },
  });
  if (!response.ok) return null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("html") || type.includes("json")) return null;
  return parsePrometheus(await response.text());
}

/** The samples of a Prometheus / OpenMetrics text exposition. */
export function parsePrometheus(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const raw = match[3];
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    samples.push({ name: match[1], labels: match[2] || "", value });
  }
  return samples;
}

/** The sum of a series over its label sets; null if the series is absent. */
function sum(samples, name) {
  let total = null;
  for (const s of samples) {
    if (s.name === name && Number.isFinite(s.value)) total = (total ?? 0) + s.value;
  }
  return total;
}

function showFigures(box, v) {
  if (!v) return;
  const item = (term, value, key) => [h("dt", {}, term), h("dd", { dataset: { figure: key } }, value)];
  replace(
    box,
    item("Memory (resident)", bytes(v.memory?.resident_bytes), "memory"),
    item("Threads", String(v.threads ?? ""), "threads"),
    item("Open files", `${v.open_files ?? "?"} of ${v.max_open_files ?? "?"}`, "open-files"),
    item("Events appended", `${v.events?.total ?? 0} (${v.events?.per_second ?? 0}/s over ${v.rate_window_seconds ?? "?"} s)`, "events"),
    item("Requests answered", String(v.requests?.total ?? ""), "requests"),
    item("Uptime", duration(v.uptime), "uptime"),
    item("Version", String(v.version ?? ""), "version"),
  );
}

function duration(seconds) {
  const s = Number(seconds) || 0;
  const d = Math.floor(s / 86400);
  const hrs = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return [d && `${d} d`, (d || hrs) && `${hrs} h`, `${m} min`].filter(Boolean).join(" ");
}

function badge(status) {
  const s = String(status ?? "unknown");
  return h("span", { class: `badge health-${s.replace(/[^a-z_]/gi, "")}` }, s.replaceAll("_", " "));
}

function ms(latency) {
  return latency === null || latency === undefined ? "—" : `${Number(latency).toFixed(1)} ms`;
}

function showHealth(health, { summary, services, lags }) {
  const s = health.services || {};
  replace(
    summary,
    h(
      "div",
      { class: "card health-summary", dataset: { status: health.status || "" } },
      h("p", { class: "figure" }, badge(health.status)),
      h(
        "p",
        { class: "muted" },
        `Aurora ${health.version ?? ""} · ${health.environment ?? ""} · up ${duration(health.uptime)} · measured ${when(health.timestamp)}`,
      ),
    ),
  );

  const row = (name, status, latency, detail) =>
    h(
      "tr",
      { dataset: { service: name, status: status || "" } },
      h("th", { scope: "row" }, name),
      h("td", { class: "status" }, badge(status)),
      h("td", { class: "latency" }, latency),
      h("td", { class: "detail" }, detail),
    );
  const errorText = (x) => (x?.error ? h("span", { class: "bad" }, x.error) : null);
  const actors = s.actors || {};
  replace(
    services,
    h(
      "table",
      { id: "health-services" },
      h("caption", { class: "visually-hidden" }, "Services this replica depends on"),
      h(
        "thead",
        {},
        h("tr", {}, h("th", { scope: "col" }, "Service"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Latency"), h("th", { scope: "col" }, "Details")),
      ),
      h(
        "tbody",
        {},
        s.database ? row("database", s.database.status, ms(s.database.latency), [s.database.backend, " ", errorText(s.database)]) : null,
        s.nats ? row("nats", s.nats.status, ms(s.nats.latency), [s.nats.backend, " ", errorText(s.nats)]) : null,
        s.actors
          ? row(
              "execution engine",
              actors.status,
              "—",
              `${actors.active_runs ?? 0} runs and ${actors.transcodes_active ?? 0} transcodes active, ${actors.restarts ?? 0} actor restarts`,
            )
          : null,
        s.projections ? row("read models", s.projections.status, ms(s.projections.latency), errorText(s.projections)) : null,
      ),
    ),
  );

  const projections = s.projections?.projections || {};
  const reports = s.projections?.actors || {};
  const names = [...new Set([...Object.keys(projections), ...Object.keys(reports)])].sort();
  replace(
    lags,
    h(
      "table",
      { id: "projection-lags" },
      h("caption", { class: "visually-hidden" }, "Read models: lag behind the event store, and their actors"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Read model"),
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, "Lag (events)"),
          h("th", { scope: "col", class: "optional" }, "Position"),
          h("th", { scope: "col" }, "Actor"),
          h("th", { scope: "col", class: "optional" }, "Restarts"),
          h("th", { scope: "col", class: "optional" }, "Last error"),
        ),
      ),
      h(
        "tbody",
        {},
        names.length
          ? names.map((name) => {
              const p = projections[name] || {};
              const a = reports[name] || {};
              return h(
                "tr",
                { dataset: { projection: name, status: p.status || "" } },
                h("th", { scope: "row" }, name, a.scope ? h("span", { class: "muted small" }, ` (${a.scope})`) : null),
                h("td", { class: "status" }, p.status ? badge(p.status) : "—"),
                h("td", { class: "lag" }, p.lag ?? "—"),
                h("td", { class: "position optional" }, p.position ?? "—"),
                h("td", { class: "actor" }, a.state ? badge(a.state) : "—"),
                h("td", { class: "restarts optional" }, a.restarts ?? "—"),
                h("td", { class: "last-error optional" }, a.last_error ?? ""),
              );
            })
          : h("tr", {}, h("td", { colspan: 7, class: "muted" }, s.projections?.error ? `Lags could not be measured: ${s.projections.error}` : "No read models reported.")),
      ),
    ),
  );
}
