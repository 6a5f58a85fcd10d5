// One run: its header (status, owner, times, input), its steps as a timeline built from its
// events (attempts, who did what when, failures), live progress of the running step, its
// outcome, cancel, and what it produced (a player, thumbnails, downloads). Followed live with
// the run's Server-Sent Events until it ends.

import { api, ApiError } from "./api.js";
import { errorBox, explain } from "./app.js";
import { bytes, field, h, replace, when } from "./dom.js";
import { FINISHED, badge, describeInput, describeStep, seconds, timeEl } from "./runs.js";

/** The run's event types (each is an SSE event name on /api/v1/runs/{id}/events). */
const EVENT_TYPES = [
  "RunRequested",
  "RunCancelled",
  "StepStarted",
  "StepProgressed",
  "StepAttemptFailed",
  "GenerationSubmitted",
  "GenerationReported",
  "StepSucceeded",
  "RunSucceeded",
  "RunFailed",
];
const TERMINAL = new Set(["RunSucceeded", "RunFailed", "RunCancelled"]);

/** A stored event's payload: {"StepStarted": {...}} → {...}. */
function inner(data, type) {
  if (!data || typeof data !== "object" || Array.isArray(data)) return {};
  if (type in data) return data[type] ?? {};
  const keys = Object.keys(data);
  if (keys.length === 1 && data[keys[0]] && typeof data[keys[0]] === "object") return data[keys[0]];
  return data;
}

/** An event of GET …/history. */
function fromHistory(e) {
  return {
    sequence: Number(e.sequence),
    position: e.position,
    type: e.type,
    time: e.time,
    actor: e.actor,
    role: e.role,
    data: inner(e.data, e.type),
    raw: e.data,
  };
}

/** An event of the SSE stream (a CloudEvent). */
function fromCloud(c) {
  return {
    sequence: Number(c.sequence),
    position: c.position,
    type: c.eventname,
    time: c.time,
    actor: c.principal,
    role: c.principalrole,
    data: inner(c.data, c.eventname),
    raw: c.data,
  };
}

/** Milliseconds between two RFC 3339 times, or null. */
function between(a, b) {
  const t0 = Date.parse(a);
  const t1 = Date.parse(b);
  return Number.isFinite(t0) && Number.isFinite(t1) ? t1 - t0 : null;
}

function took(ms) {
  return ms === null || ms < 0 ? "" : seconds(ms / 1000);
}

function who(ev) {
  if (!ev?.actor) return "";
  return ev.role ? `${ev.actor} (${ev.role})` : ev.actor;
}

/** The run as its view and its events make it. */
function derive(view, events) {
  const outputs = Array.isArray(view.outputs) ? view.outputs : [];
  const run = {
    id: view.id,
    owner: view.owner,
    input: view.input,
    created_at: view.created_at,
    updated_at: view.updated_at,
    status: view.status,
    current_step: view.current_step ?? 0,
    attempt: view.attempt ?? 0,
    failure_reason: view.failure_reason ?? null,
    cancel_reason: view.cancel_reason ?? null,
    failed_step: null,
    requested: null,
    end: null,
    steps: (Array.isArray(view.steps) ? view.steps : []).map((spec, index) => ({
      index,
      spec,
      attempts: [],
      output: outputs[index] ?? null,
      report: null,
    })),
  };
  if (events.length) {
    // The events are the whole story: the status follows from them as the view's does.
    run.status = "requested";
    run.current_step = 0;
    run.attempt = 0;
  }
  for (const ev of events) {
    const d = ev.data || {};
    const step = Number.isInteger(d.step) ? run.steps[d.step] : null;
    const attemptOf = (n) => {
      if (!step) return null;
      let a = step.attempts.find((x) => x.n === n);
      if (!a) {
        a = { n, milestones: [] };
        step.attempts.push(a);
      }
      return a;
    };
    switch (ev.type) {
      case "RunRequested":
        run.requested = ev;
        break;
      case "StepStarted": {
        const a = attemptOf(d.attempt);
        if (a) Object.assign(a, { started: ev, executor: d.executor });
        run.status = "running";
        run.current_step = d.step;
        run.attempt = d.attempt;
        break;
      }
      case "StepProgressed": {
        const a = attemptOf(d.attempt);
        if (a) {
          a.percent = d.percent;
          a.milestones.push({ percent: d.percent, ev });
        }
        break;
      }
      case "StepAttemptFailed": {
        const a = attemptOf(d.attempt);
        if (a) a.failed = { reason: d.reason, interrupted: !!d.interrupted, ev };
        break;
      }
      case "GenerationSubmitted": {
        const a = attemptOf(d.attempt);
        if (a) a.generation = { provider: d.provider, video_id: d.video_id, at: d.at, ev };
        break;
      }
      case "GenerationReported":
        if (step) step.report = { succeeded: !!d.succeeded, message: d.message, video_id: d.video_id, ev };
        break;
      case "StepSucceeded": {
        const a = attemptOf(d.attempt);
        if (a) a.succeeded = ev;
        if (step && d.output) step.output = d.output;
        run.current_step = d.step + 1;
        run.attempt = 0;
        break;
      }
      case "RunSucceeded":
        run.status = "succeeded";
        run.end = ev;
        break;
      case "RunFailed":
        run.status = "failed";
        run.end = ev;
        run.failure_reason = d.reason ?? run.failure_reason;
        run.failed_step = Number.isInteger(d.step) ? d.step : null;
        break;
      case "RunCancelled":
        run.status = "cancelled";
        run.end = ev;
        run.cancel_reason = d.reason ?? null;
        break;
      default:
        break;
    }
    if (ev.time) run.updated_at = ev.time;
  }
  if (!events.length && run.status === "failed") run.failed_step = run.current_step;
  return run;
}

/** What a step is doing or did: succeeded, running, retrying, failed, cancelled, … */
function stepState(run, step) {
  if (step.output || step.attempts.some((a) => a.succeeded)) return "succeeded";
  const ran = step.attempts.length > 0;
  if (run.status === "failed") {
    if (run.failed_step === step.index || (run.failed_step === null && ran && step.index === run.current_step)) {
      return "failed";
    }
    return "skipped";
  }
  if (run.status === "cancelled") return ran && step.index === run.current_step ? "cancelled" : "skipped";
  if (run.status === "succeeded") return "skipped";
  if (step.index !== run.current_step) return "pending";
  if (run.status === "requested") return "waiting";
  const last = step.attempts[step.attempts.length - 1];
  if (last?.started && !last.failed) return "running";
  return ran ? "retrying" : "waiting";
}

const STATE_CLASS = {
  succeeded: "ok",
  failed: "bad",
  running: "live",
  retrying: "warn",
  cancelled: "warn",
  waiting: "",
  pending: "",
  skipped: "skipped",
};

const STATE_TEXT = {
  succeeded: "succeeded",
  failed: "failed",
  running: "running",
  retrying: "waiting to retry",
  cancelled: "cancelled",
  waiting: "waiting to start",
  pending: "pending",
  skipped: "did not run",
};

function stepParams(spec) {
  switch (spec?.kind) {
    case "transcode":
      return [
        ["format", spec.format],
        ["quality", spec.quality],
        ["resolution", spec.resolution],
        spec.upscale ? ["upscale", "yes"] : null,
      ].filter(Boolean);
    case "thumbnail":
      return [["at", seconds(spec.at_seconds)]];
    case "generate":
      return [
        ["provider", spec.provider],
        ["avatar", spec.avatar_id],
        ["voice", spec.voice_id],
        spec.dimension ? ["size", `${spec.dimension.width}×${spec.dimension.height}`] : null,
        spec.background ? ["background", spec.background] : null,
        spec.script ? ["script", spec.script.length > 80 ? `${spec.script.slice(0, 80)}…` : spec.script] : null,
      ].filter(Boolean);
    default:
      return [];
  }
}

/** What a step produced, in words. */
function outputText(output) {
  if (!output || typeof output !== "object") return null;
  if (output.kind === "probe" && output.media) {
    const m = output.media;
    const streams = Array.isArray(m.streams) ? m.streams : [];
    const video = streams.find((s) => s.kind === "video");
    const audio = streams.find((s) => s.kind === "audio");
    return [
      `Found ${m.container || "media"}`,
      m.duration_seconds != null ? `, ${seconds(m.duration_seconds)}` : "",
      video ? `; video ${video.codec}${video.width ? ` ${video.width}×${video.height}` : ""}` : "; no video",
      audio ? `; audio ${audio.codec}${audio.channels ? ` ${audio.channels} ch` : ""}` : "; no audio",
      ".",
    ].join("");
  }
  if (output.kind === "artifact" && output.artifact) {
    const a = output.artifact;
    const size = a.width ? `, ${a.width}×${a.height}` : "";
    return `Made ${a.name} (${a.content_type}, ${bytes(a.bytes)}${size}).`;
  }
  return null;
}

function attemptItem(step, a) {
  const lines = [];
  const start = a.started;
  lines.push(
    h(
      "div",
      {},
      h("strong", {}, `Attempt ${a.n}`),
      start ? [" started ", timeEl(start.time), " by ", h("span", { class: "actor" }, who(start))] : null,
      a.executor ? [" on ", h("code", {}, a.executor)] : null,
    ),
  );
  if (a.generation) {
    lines.push(
      h(
        "div",
        { class: "muted" },
        `Submitted to ${a.generation.provider} as video `,
        h("code", {}, a.generation.video_id),
        " ",
        timeEl(a.generation.at || a.generation.ev.time),
      ),
    );
  }
  if (a.milestones.length) {
    lines.push(
      h(
        "div",
        { class: "muted" },
        "Reached ",
        a.milestones.map((m, i) => [i ? " · " : "", h("span", { title: when(m.ev.time) }, `${m.percent}%`)]),
      ),
    );
  }
  if (a.failed) {
    const f = a.failed;
    const after = start ? took(between(start.time, f.ev.time)) : "";
    lines.push(
      h(
        "div",
        { class: f.interrupted ? "warn-text" : "bad-text" },
        f.interrupted ? "Interrupted" : "Failed",
        after ? ` after ${after}` : "",
        " ",
        timeEl(f.ev.time),
        ": ",
        h("span", { class: "reason" }, f.reason || "no reason given"),
        f.interrupted ? h("span", { class: "muted" }, " (its executor stopped; this does not count as a failure)") : null,
      ),
    );
  }
  if (a.succeeded) {
    const after = start ? took(between(start.time, a.succeeded.time)) : "";
    lines.push(h("div", { class: "ok-text" }, "Succeeded", after ? ` after ${after}` : "", " ", timeEl(a.succeeded.time)));
  }
  return h("li", { dataset: { attempt: a.n } }, lines);
}

export async function render(main, params) {
  const id = params.id;
  const base = `/api/v1/runs/${encodeURIComponent(id)}`;
  let stopped = false;
  let view = null;
  let events = [];
  let run = null;
  let report = null; // the latest progress report
  let artifacts = null;
  let artifactsKey = "";
  let source = null;
  let followTimer = null;
  let followDelay = 1000;
  let ended = false; // the stream said the run ended (reloaded once)
  let cancelling = false;

  // ---- Elements ----------------------------------------------------------------------
  const status = h("span", { id: "run-status", class: "badge", dataset: { status: "" } });
  const live = h("span", { id: "run-live", class: "live-state", role: "status", dataset: { state: "off" } });
  const facts = h("dl", { class: "facts", id: "run-facts" });
  const outcome = h("div", { id: "run-outcome", "aria-live": "polite" });
  const problems = h("div", { class: "problems", "aria-live": "polite" });

  const reason = h("input", {
    id: "cancel-reason",
    name: "reason",
    maxlength: 1000,
    autocomplete: "off",
    placeholder: "e.g. uploaded the wrong file",
  });
  const cancelButton = h("button", { id: "cancel-run", type: "submit", class: "danger" }, "Cancel run");
  const cancelProblems = h("div", { class: "problems", "aria-live": "polite" });
  const cancelForm = h(
    "form",
    { id: "cancel-form", class: "cancel-form", hidden: true, "aria-label": "Cancel this run" },
    field("Reason for cancelling (optional)", reason, "Kept with the run. Cancelling stops the running step at once."),
    h("div", { class: "row" }, cancelButton),
    cancelProblems,
  );

  const progress = h("progress", { id: "step-progress", max: 100, "aria-label": "Progress of the running step" });
  const progressText = h("span", { id: "progress-text", class: "progress-text" });
  const progressBox = h("div", { class: "step-live" }, progress, progressText);

  const timeline = h("ol", { id: "timeline", class: "timeline", "aria-label": "Steps" });
  const artifactsBody = h("div", { id: "artifacts-body" });
  const artifactsProblems = h("div", { class: "problems", "aria-live": "polite" });
  const eventRows = h("tbody");
  const eventLog = h(
    "details",
    { id: "event-log", class: "event-log" },
    h("summary", {}, "Event history"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "events-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, "#"),
            h("th", { scope: "col" }, "Time"),
            h("th", { scope: "col" }, "Event"),
            h("th", { scope: "col" }, "By"),
            h("th", { scope: "col", class: "optional" }, "Data"),
          ),
        ),
        eventRows,
      ),
    ),
  );

  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "← All runs")),
    h("div", { class: "page-head" }, h("h1", {}, "Run ", h("code", { class: "run-id" }, id)), status, live),
    problems,
    facts,
    outcome,
    cancelForm,
    h("h2", {}, "Steps"),
    timeline,
    h("section", { id: "artifacts", "aria-labelledby": "artifacts-title" }, h("h2", { id: "artifacts-title" }, "Artifacts"), artifactsProblems, artifactsBody),
    eventLog,
  );

  // ---- Rendering ---------------------------------------------------------------------
  function renderHeader() {
    status.className = `badge ${run.status}`;
    status.dataset.status = run.status;
    status.textContent = run.status;
    const finished = FINISHED.has(run.status);
    const elapsed = between(run.created_at, finished ? run.updated_at : new Date().toISOString());
    const input = run.input;
    const inputText = describeInput(input);
    const requested = run.requested;
    replace(
      facts,
      [
        ["Owner", h("span", { id: "run-owner" }, run.owner)],
        [
          "Requested",
          h("span", {}, timeEl(run.created_at), requested && requested.actor !== run.owner ? [" by ", who(requested)] : null),
        ],
        ["Updated", timeEl(run.updated_at)],
        [finished ? "Took" : "Running for", took(elapsed) || "—"],
        [
          "Input",
          input?.url && /^https?:\/\//i.test(input.url)
            ? h("a", { href: input.url, rel: "noopener noreferrer nofollow", target: "_blank", class: "mono" }, input.url)
            : h("span", { class: input?.media_id ? "mono" : "" }, inputText),
        ],
        ["Steps", run.steps.map((s) => s.spec?.kind).join(" → ")],
      ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    );
    cancelForm.hidden = finished;
    cancelButton.disabled = finished || cancelling;
    reason.disabled = finished;
  }

  function renderOutcome() {
    const end = run.end;
    const by = end ? [" by ", who(end), " ", timeEl(end.time)] : [];
    switch (run.status) {
      case "succeeded":
        replace(
          outcome,
          h(
            "div",
            { class: "notice ok outcome", role: "status", dataset: { outcome: "succeeded" } },
            h("strong", {}, "Succeeded. "),
            `${run.steps.length} step${run.steps.length === 1 ? "" : "s"} in ${took(between(run.created_at, run.updated_at)) || "—"}.`,
            artifacts?.length ? " Its files are below." : "",
          ),
        );
        break;
      case "failed": {
        const step = run.failed_step !== null ? run.steps[run.failed_step] : null;
        replace(
          outcome,
          h(
            "div",
            { class: "notice error outcome", role: "alert", dataset: { outcome: "failed" } },
            h("strong", {}, "Failed"),
            step ? ` at step ${step.index + 1} (${step.spec?.kind})` : "",
            ": ",
            h("span", { id: "failure-reason", class: "reason" }, run.failure_reason || "no reason recorded"),
            end ? h("span", { class: "muted" }, " — ", timeEl(end.time)) : null,
          ),
        );
        break;
      }
      case "cancelled":
        replace(
          outcome,
          h(
            "div",
            { class: "notice warn outcome", role: "status", dataset: { outcome: "cancelled" } },
            h("strong", {}, "Cancelled"),
            by,
            ": ",
            h("span", { id: "cancel-reason-shown", class: "reason" }, run.cancel_reason || "no reason given"),
          ),
        );
        break;
      case "requested":
        replace(
          outcome,
          h(
            "p",
            { class: "muted outcome" },
            "Waiting to start. Runs start in order; your tier runs a limited number at once, the rest wait.",
          ),
        );
        break;
      default:
        replace(outcome);
    }
  }

  function renderTimeline() {
    // The bar sits in the running step; once no step runs, in the last transcode that
    // succeeded, full: what the run's progress came to stays in sight.
    const running = run.steps.find((step) => ["running", "retrying"].includes(stepState(run, step)));
    const finishedTranscode = [...run.steps]
      .reverse()
      .find((step) => step.spec?.kind === "transcode" && stepState(run, step) === "succeeded");
    const barStep = running || finishedTranscode;
    const items = run.steps.map((step) => {
      const state = stepState(run, step);
      const params = stepParams(step.spec);
      const out = outputText(step.output);
      const failedHere = state === "failed";
      const li = h(
        "li",
        { class: STATE_CLASS[state] || "", dataset: { step: step.index, state } },
        h(
          "div",
          { class: "step-head" },
          h("span", { class: "step-num" }, `${step.index + 1}.`),
          " ",
          h("strong", { class: "step-kind-name" }, step.spec?.kind || "step"),
          " ",
          h("span", { class: `step-state ${state}` }, STATE_TEXT[state] || state),
        ),
        params.length
          ? h(
              "dl",
              { class: "step-params-list" },
              params.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))),
            )
          : null,
        step.attempts.length ? h("ul", { class: "attempts" }, step.attempts.map((a) => attemptItem(step, a))) : null,
        step.report
          ? h(
              "p",
              { class: step.report.succeeded ? "muted" : "bad-text" },
              `The provider reported video ${step.report.video_id} ${step.report.succeeded ? "ready" : "failed"}`,
              step.report.message ? `: ${step.report.message}` : "",
              " ",
              timeEl(step.report.ev.time),
            )
          : null,
        out ? h("p", { class: "step-output" }, out) : null,
        failedHere && run.failure_reason
          ? h("p", { class: "bad-text" }, "Reason: ", h("span", { class: "reason" }, run.failure_reason))
          : null,
      );
      if (step === barStep) li.append(progressBox);
      return li;
    });
    replace(timeline, items.length ? items : h("li", {}, "No steps."));
    if (!timeline.contains(progressBox)) progressBox.remove();
    updateProgress();
  }

  /** The running step's progress: the live report, else its last stored milestone. */
  function updateProgress() {
    if (!run || !timeline.contains(progressBox)) return;
    const done = run.steps[Number(progressBox.closest("li[data-step]")?.dataset.step)];
    if (done && stepState(run, done) === "succeeded") {
      progress.value = 100;
      const last = report && report.step === done.index ? report : null;
      const parts = ["100%", "done"];
      if (last && Number.isFinite(Number(last.fps))) parts.push(`${Number(last.fps).toFixed(1)} fps`);
      if (last && Number.isFinite(Number(last.speed))) parts.push(`${Number(last.speed).toFixed(2)}× speed`);
      progressText.textContent = parts.join(" · ");
      progress.setAttribute("aria-valuetext", progressText.textContent);
      return;
    }
    const step = run.steps[run.current_step];
    const attempt = step?.attempts.find((a) => a.n === run.attempt);
    const here = report && report.step === run.current_step && (!run.attempt || report.attempt === run.attempt);
    const percent = here && Number(report.percent) > 0 ? Number(report.percent) : attempt?.percent;
    if (Number.isFinite(percent) && percent > 0) {
      progress.value = Math.min(100, percent);
    } else {
      progress.removeAttribute("value"); // indeterminate
    }
    const parts = [];
    const shownPercent = Number.isFinite(percent) ? percent : here ? Number(report.percent) : NaN;
    if (Number.isFinite(shownPercent)) parts.push(`${shownPercent.toFixed(1)}%`);
    if (here) {
      if (Number.isFinite(Number(report.fps))) parts.push(`${Number(report.fps).toFixed(1)} fps`);
      if (Number.isFinite(Number(report.speed))) parts.push(`${Number(report.speed).toFixed(2)}× speed`);
      if (Number(report.out_seconds) > 0) parts.push(`${seconds(report.out_seconds)} done`);
    }
    const state = step ? stepState(run, step) : "";
    progressText.textContent = parts.length
      ? parts.join(" · ")
      : state === "retrying"
        ? "Waiting to retry…"
        : step?.spec?.kind === "transcode"
          ? "Starting…"
          : "Working…";
    progress.setAttribute("aria-valuetext", progressText.textContent);
  }

  function renderEvents() {
    replace(
      eventRows,
      events.map((ev) =>
        h(
          "tr",
          { dataset: { sequence: ev.sequence } },
          h("td", {}, ev.sequence),
          h("td", {}, timeEl(ev.time)),
          h("td", {}, ev.type),
          h("td", {}, who(ev)),
          h("td", { class: "optional" }, h("code", {}, JSON.stringify(ev.data))),
        ),
      ),
    );
  }

  function renderAll() {
    run = derive(view, events);
    renderHeader();
    renderOutcome();
    renderTimeline();
    renderEvents();
  }

  function renderArtifacts() {
    const items = artifacts || [];
    const finished = !!run && FINISHED.has(run.status);
    const key = `${finished}|${items.map((a) => `${a.id}:${a.bytes}`).join(",")}`;
    if (key === artifactsKey && artifactsBody.childElementCount) return;
    artifactsKey = key;
    if (!items.length) {
      replace(
        artifactsBody,
        h("p", { class: "muted", id: "artifacts-empty" }, finished ? "This run produced no files." : "No files yet: they appear here as steps finish."),
      );
      return;
    }
    const videos = items.filter((a) => String(a.content_type).startsWith("video/"));
    const images = items.filter((a) => String(a.content_type).startsWith("image/"));
    const shown = videos[videos.length - 1];
    const player = shown
      ? h("video", {
          id: "artifact-video",
          controls: true,
          preload: "metadata",
          src: shown.url,
          width: shown.width || null,
          height: shown.height || null,
          "aria-label": `Video: ${shown.name}`,
        })
      : null;
    const caption = shown ? h("figcaption", { class: "muted" }, describeArtifact(shown)) : null;
    const play = (a) => () => {
      player.src = a.url;
      player.setAttribute("aria-label", `Video: ${a.name}`);
      caption.textContent = describeArtifact(a);
      player.focus();
    };
    replace(
      artifactsBody,
      h(
        "div",
        { class: "media-grid" },
        shown ? h("figure", { class: "player" }, player, caption) : null,
        images.map((a) =>
          h(
            "figure",
            { class: "thumb-figure" },
            h("img", {
              class: "thumb",
              src: a.url,
              alt: `Thumbnail from step ${Number(a.step) + 1}${a.width ? `, ${a.width}×${a.height}` : ""} (${a.name})`,
              width: a.width || null,
              height: a.height || null,
              loading: "lazy",
            }),
            h("figcaption", { class: "muted" }, describeArtifact(a)),
          ),
        ),
      ),
      h("h3", {}, "Downloads"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { id: "artifacts-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "File"),
              h("th", { scope: "col" }, "Size"),
              h("th", { scope: "col", class: "optional" }, "Step"),
              h("th", { scope: "col", class: "optional" }, "Type"),
              h("th", { scope: "col", class: "optional" }, "Picture"),
              h("th", { scope: "col" }, "SHA-256"),
            ),
          ),
          h(
            "tbody",
            {},
            items.map((a) =>
              h(
                "tr",
                { dataset: { artifactId: a.id } },
                h(
                  "td",
                  {},
                  h("a", { class: "download", href: a.url, download: a.name, type: a.content_type }, a.name),
                  videos.length > 1 && String(a.content_type).startsWith("video/")
                    ? [" ", h("button", { type: "button", class: "secondary small", onclick: play(a) }, "Play")]
                    : null,
                ),
                h("td", { class: "nowrap" }, bytes(a.bytes)),
                h("td", { class: "optional" }, Number(a.step) + 1),
                h("td", { class: "optional" }, a.content_type),
                h(
                  "td",
                  { class: "optional" },
                  [a.width ? `${a.width}×${a.height}` : "", a.duration_seconds != null ? ` ${seconds(a.duration_seconds)}` : ""].join("").trim() || "—",
                ),
                h("td", {}, h("code", { class: "sha" }, a.sha256)),
              ),
            ),
          ),
        ),
      ),
    );
  }

  function describeArtifact(a) {
    const parts = [a.name, bytes(a.bytes)];
    if (a.width) parts.push(`${a.width}×${a.height}`);
    if (a.duration_seconds != null) parts.push(seconds(a.duration_seconds));
    return parts.join(" · ");
  }

  // ---- Loading -----------------------------------------------------------------------
  async function loadRun() {
    const history = await api("GET", `${base}/history`);
    if (stopped) return;
    if (!history?.state) throw new ApiError(404, { detail: "no run with this id" });
    view = history.state;
    const loaded = (Array.isArray(history.events) ? history.events : []).map(fromHistory);
    // Keep anything the stream delivered that the history did not have yet.
    const bySeq = new Map(loaded.map((e) => [e.sequence, e]));
    for (const e of events) if (!bySeq.has(e.sequence)) bySeq.set(e.sequence, e);
    events = [...bySeq.values()].sort((a, b) => a.sequence - b.sequence);
    renderAll();
  }

  async function loadArtifacts() {
    try {
      const list = await api("GET", `${base}/artifacts`);
      if (stopped) return;
      artifacts = Array.isArray(list?.items) ? list.items : [];
      replace(artifactsProblems);
      renderArtifacts();
      if (run?.status === "succeeded") renderOutcome();
    } catch (error) {
      if (stopped) return;
      replace(artifactsProblems, errorBox(error));
    }
  }

  async function reload() {
    try {
      await Promise.all([loadRun(), loadArtifacts()]);
      replace(problems);
    } catch (error) {
      if (!stopped) replace(problems, errorBox(error));
    }
  }

  // ---- Following -----------------------------------------------------------------------
  function setLive(state, text) {
    live.dataset.state = state;
    live.textContent = text;
  }

  function onEvent(message) {
    let cloud;
    try {
      cloud = JSON.parse(message.data);
    } catch {
      return;
    }
    const ev = fromCloud(cloud);
    if (!ev.type || !Number.isFinite(ev.sequence)) return;
    if (!events.some((e) => e.sequence === ev.sequence)) {
      events.push(ev);
      events.sort((a, b) => a.sequence - b.sequence);
      if (view) renderAll();
    }
    if (ev.type === "StepSucceeded") loadArtifacts();
    if (TERMINAL.has(ev.type)) finish();
  }

  function onProgress(message) {
    try {
      const data = JSON.parse(message.data);
      if (data?.run_id && data.run_id !== id) return;
      report = data;
    } catch {
      return;
    }
    updateProgress();
  }

  /** The run ended: stop following, and read it and its files once more. */
  function finish() {
    if (ended) return;
    ended = true;
    source?.close();
    source = null;
    clearTimeout(followTimer);
    setLive("off", "");
    reload();
  }

  function follow() {
    clearTimeout(followTimer);
    if (stopped || source || ended || !run || FINISHED.has(run.status)) return;
    if (typeof EventSource !== "function") return;
    setLive("connecting", "Connecting…");
    const es = new EventSource(`${base}/events`);
    source = es;
    es.addEventListener("open", () => {
      setLive("live", "Live");
      followDelay = 1000;
    });
    for (const type of EVENT_TYPES) es.addEventListener(type, onEvent);
    es.addEventListener("progress", onProgress);
    es.addEventListener("unauthorized", () => {
      es.close();
      source = null;
      setLive("closed", "Stopped: the session ended");
    });
    es.addEventListener("error", () => {
      if (stopped || source !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // Refused, or nothing more to send (204): read the run again, and follow again
        // (later, slower each time) if it has not ended.
        source = null;
        setLive("closed", "Disconnected");
        followTimer = setTimeout(async () => {
          await reload();
          follow();
        }, followDelay);
        followDelay = Math.min(followDelay * 2, 30000);
      } else {
        setLive("reconnecting", "Reconnecting…");
      }
    });
  }

  // ---- Cancel ------------------------------------------------------------------------
  cancelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (cancelButton.disabled) return;
    const box = cancelForm.querySelector(".field");
    box.querySelector(".field-error").textContent = "";
    reason.removeAttribute("aria-invalid");
    replace(cancelProblems);
    cancelling = true;
    cancelButton.disabled = true;
    cancelButton.textContent = "Cancelling…";
    const text = reason.value.trim();
    try {
      await api("POST", `${base}/cancel`, text ? { reason: text } : {});
      if (stopped) return;
      replace(cancelProblems, h("div", { class: "notice ok", role: "status" }, "Cancelled."));
      await reload();
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 422 && /reason/.test(error.problem?.detail || "")) {
        box.querySelector(".field-error").textContent = explain(error);
        reason.setAttribute("aria-invalid", "true");
        reason.focus();
      } else {
        replace(cancelProblems, errorBox(error));
      }
      // 409: it finished meanwhile; show how.
      if (error instanceof ApiError && error.status === 409) await reload();
    } finally {
      cancelling = false;
      cancelButton.textContent = "Cancel run";
      if (run && !FINISHED.has(run.status)) cancelButton.disabled = false;
    }
  });

  // ---- Start -------------------------------------------------------------------------
  // The first read must work (else the page is an error); the files may fail alone.
  try {
    await loadRun();
  } catch (error) {
    replace(main, h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "← All runs")), h("h1", {}, "Run ", h("code", {}, id)), errorBox(error));
    return undefined;
  }
  await loadArtifacts();
  // Followed while it runs: the stream replays its events, then sends new ones and
  // progress, and ends after the event that ends the run.
  follow();
  // "Running for" moves on its own.
  const tick = setInterval(() => {
    if (run && !FINISHED.has(run.status)) renderHeader();
  }, 5000);

  return () => {
    stopped = true;
    clearInterval(tick);
    clearTimeout(followTimer);
    source?.close();
    source = null;
  };
}
