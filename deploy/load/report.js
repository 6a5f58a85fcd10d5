#!/usr/bin/env node
// Summarises a run of deploy/load/aurora.yml (scripts/load runs it): per phase p50/p95/p99,
// errors and throughput, the whole test, each request name, and the targets; writes
// summary.md and summary.json beside the report.
//
//   node report.js DIR [--environment ci] [--phases JSON]
//   node report.js DIR --stage RATE      # one JSON line, for the stress driver
//
// DIR holds Artillery's JSON report (report.json), its console output (report.log: the
// phases' actual start and end times) and processor.js's samples (samples.csv: one line
// per response). Per-phase figures are exact, from the samples, by the phase in progress
// (as it actually ran: a saturated load generator stretches phases) when each response
// arrived; the whole test's p99 is Artillery's (the one its ensure check used).
// Requests that got no response at all (refused, reset, timed out) are only counted by
// Artillery per 10 s period; each period is assigned to the phase its middle falls in.

'use strict';

const fs = require('node:fs');
const path = require('node:path');

const TARGETS = { p99: 3000, errorPct: 5, rps: 100 };

function parseArgs() {
  const argv = process.argv.slice(2);
  const out = { dir: argv[0] };
  for (let i = 1; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!out.dir) throw new Error('usage: report.js DIR [--environment ENV] [--phases JSON]');
  return out;
}

function plannedPhases(opts) {
  if (opts.phases) return JSON.parse(opts.phases);
  const yaml = require('js-yaml');
  const script = yaml.load(fs.readFileSync(path.join(__dirname, 'aurora.yml'), 'utf8'));
  const env = opts.environment && script.config.environments[opts.environment];
  return (env && env.phases) || script.config.phases;
}

// "Phase started: ramp (index: 1, duration: 60s) 22:08:00(+0000)" → epoch ms.
function actualPhases(logText, day) {
  const found = [];
  const rx = /^Phase (started|completed): .* \(index: (\d+), duration: [^)]*\) (\d\d):(\d\d):(\d\d)\(([+-])(\d\d)(\d\d)\)/;
  let last = 0;
  for (const line of logText.split('\n')) {
    const m = rx.exec(line);
    if (!m) continue;
    const offset = (m[6] === '-' ? -1 : 1) * (Number(m[7]) * 60 + Number(m[8])) * 60000;
    let t = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(),
      Number(m[3]), Number(m[4]), Number(m[5])) - offset;
    while (t < last - 12 * 3600e3) t += 86400e3; // past midnight
    last = t;
    const i = Number(m[2]);
    found[i] = found[i] || {};
    found[i][m[1] === 'started' ? 'start' : 'end'] = t;
  }
  return found;
}

function quantile(sorted, q) {
  if (!sorted.length) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

// Artillery's errors.* counters: requests that got no response (ETIMEDOUT, ECONNRESET
// ...), but not "Failed capture or match", which ends a session after a response that
// was already counted (a 409 login has no token to capture).
function errorCounters(counters) {
  let n = 0;
  const kinds = {};
  for (const [name, value] of Object.entries(counters || {})) {
    if (name.startsWith('errors.') && name !== 'errors.Failed capture or match') {
      n += value;
      kinds[name.slice(7)] = (kinds[name.slice(7)] || 0) + value;
    }
  }
  return { n, kinds };
}

const ms = (v) => (v === undefined || v === null || Number.isNaN(v) ? 'n/a' : `${Math.round(v)}`);
const pct = (a, b) => (b > 0 ? (100 * a) / b : 0);

function readSamples(file) {
  if (!fs.existsSync(file)) return null;
  const rows = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const [at, firstByte, total, status, ...name] = line.split(',');
    rows.push({
      at: Number(at),
      latency: firstByte === '' ? NaN : Number(firstByte),
      total: total === '' ? NaN : Number(total),
      status: Number(status),
      name: name.join(','),
    });
  }
  return rows;
}

function stats(samples) {
  const lat = samples.map((s) => s.latency).filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  return {
    count: samples.length,
    failed: samples.filter((s) => s.status < 200 || s.status >= 300).length,
    p50: quantile(lat, 0.5),
    p95: quantile(lat, 0.95),
    p99: quantile(lat, 0.99),
    max: lat[lat.length - 1],
  };
}

function main() {
  const opts = parseArgs();
  const dir = opts.dir;
  const report = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8'));
  const agg = report.aggregate;
  const c = agg.counters || {};
  const s = agg.summaries || {};
  const periods = (report.intermediate || [])
    .map((p) => ({ ...p, period: Number(p.period) }))
    .sort((a, b) => a.period - b.period);

  const requests = c['http.requests'] || 0;
  const responses = c['aurora.responses.all'] || 0;
  const failedResponses = c['aurora.responses.failed'] || 0;
  const noResponse = Math.max(0, requests - (c['http.responses'] || 0));
  const net = errorCounters(c);
  const seconds = (agg.lastMetricAt - agg.firstMetricAt) / 1000;
  const rt = s['http.response_time'] || {};
  const whole = {
    seconds,
    requests,
    responses,
    failed: failedResponses,
    noResponse,
    errorPct: pct(failedResponses + noResponse, requests),
    requestRate: (agg.rates || {})["http.request_rate"] || 0,
    meanRate: requests / Math.max(seconds, 1),
    p50: rt.p50,
    p95: rt.p95,
    p99: rt.p99,
    max: rt.max,
    vusersCreated: c['vusers.created'] || 0,
    vusersFailed: c['vusers.failed'] || 0,
  };
  whole.vuserErrorPct = pct(whole.vusersFailed, whole.vusersCreated);
  whole.met = {
    p99: (rt.p99 ?? Infinity) < TARGETS.p99,
    errors: whole.errorPct < TARGETS.errorPct && whole.vuserErrorPct <= TARGETS.errorPct,
    rps: whole.requestRate > TARGETS.rps,
  };
  whole.allMet = whole.met.p99 && whole.met.errors && whole.met.rps;

  const logFile = path.join(dir, 'report.log');
  const ran = fs.existsSync(logFile)
    ? actualPhases(fs.readFileSync(logFile, 'utf8'), new Date(agg.firstMetricAt))
    : [];

  if (opts.stage) {
    // The arrival rate Artillery achieved: a starved generator launches late.
    const stage = ran[0] || {};
    const span = stage.start && stage.end ? (stage.end - stage.start) / 1000 : null;
    const achieved = span ? whole.vusersCreated / span : null;
    console.log(JSON.stringify({ rate: Number(opts.stage), stageSeconds: span, achieved, ...whole }));
    return;
  }

  // Phases as planned, and as they ran.
  const planned = plannedPhases(opts);
  let at = agg.firstMetricAt;
  const rows = planned.map((phase, index) => {
    const actual = ran[index] || {};
    const start = actual.start ?? at;
    const end = actual.end ?? start + Number(phase.duration) * 1000;
    at = end;
    return {
      name: phase.name || `phase ${index + 1}`,
      offered: phase.rampTo !== undefined ? `${phase.arrivalRate}→${phase.rampTo}` : `${phase.arrivalRate}`,
      planned: Number(phase.duration),
      start,
      end,
    };
  });
  const lastEnd = rows.length ? rows[rows.length - 1].end : agg.firstMetricAt;
  rows.push({ name: 'tail', offered: '—', planned: 0, start: lastEnd, end: Math.max(agg.lastMetricAt, lastEnd) + 1 });

  const samples = readSamples(path.join(dir, 'samples.csv'));
  for (const row of rows) {
    const mine = samples ? samples.filter((x) => x.at >= row.start && x.at < row.end) : [];
    Object.assign(row, stats(mine));
    row.seconds = (row.end - row.start) / 1000;
    row.rps = row.name === 'tail' ? null : row.count / Math.max(row.seconds, 1);
    row.noResponse = 0;
  }
  for (const p of periods) {
    const middle = p.period + 5000;
    const row = rows.find((r) => middle >= r.start && middle < r.end) || rows[rows.length - 1];
    row.noResponse += errorCounters(p.counters).n;
  }
  for (const row of rows) row.errorPct = pct(row.failed + row.noResponse, row.count + row.noResponse);

  const failures = Object.entries(c)
    .filter(([k]) => k.startsWith('aurora.failed.'))
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k.slice('aurora.failed.'.length)}: ${v}`);

  const byName = {};
  for (const x of samples || []) (byName[x.name] = byName[x.name] || []).push(x);
  const endpoints = Object.entries(byName)
    .map(([name, list]) => ({ name, ...stats(list) }))
    .sort((a, b) => b.count - a.count);

  const lines = [];
  const say = (line = '') => lines.push(line);
  const env = opts.environment ? `, environment ${opts.environment}` : '';
  say(`${seconds.toFixed(0)} s${env}: ${whole.vusersCreated} virtual users ` +
    `(${whole.vusersFailed} failed), ${requests} requests.`);
  say();
  say('| phase | VU/s | ran (planned) s | responses | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |');
  say('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    if (r.name === 'tail' && r.count === 0 && r.noResponse === 0) continue;
    const name = r.name === 'tail' ? 'after the last arrival' : r.name;
    const ran = r.name === 'tail' ? `${r.seconds.toFixed(0)}` : `${r.seconds.toFixed(0)} (${r.planned})`;
    say(`| ${name} | ${r.offered} | ${ran} | ${r.count} | ${r.rps === null ? '—' : r.rps.toFixed(1)} | ` +
      `${ms(r.p50)} | ${ms(r.p95)} | ${ms(r.p99)} | ${ms(r.max)} | ` +
      `${r.failed + r.noResponse} (${r.errorPct.toFixed(2)} %) |`);
  }
  say(`| **whole test** (Artillery) | | ${seconds.toFixed(0)} | ${responses} | ${whole.meanRate.toFixed(1)} | ` +
    `${ms(whole.p50)} | ${ms(whole.p95)} | **${ms(whole.p99)}** | ${ms(whole.max)} | ` +
    `${failedResponses + noResponse} (${whole.errorPct.toFixed(2)} %) |`);
  say();
  const mark = (ok) => (ok ? 'met' : '**missed**');
  say(`Targets: p99 < ${TARGETS.p99} ms: ${ms(whole.p99)} ms, ${mark(whole.met.p99)}. ` +
    `Error rate < ${TARGETS.errorPct} %: ${whole.errorPct.toFixed(2)} % of requests, ` +
    `${whole.vuserErrorPct.toFixed(2)} % of virtual users, ${mark(whole.met.errors)}. ` +
    `Throughput > ${TARGETS.rps} req/s: http.request_rate ${whole.requestRate}/s ` +
    `(requests ÷ duration: ${whole.meanRate.toFixed(1)}/s), ${mark(whole.met.rps)}.`);
  const stretched = rows.filter((r) => r.name !== 'tail' && r.seconds > r.planned + 1.5);
  if (stretched.length) {
    say();
    say(`The load generator fell behind its schedule: ${stretched
      .map((r) => `${r.name} ran ${r.seconds.toFixed(0)} s instead of ${r.planned} s`)
      .join(', ')} (Artillery launches a phase's virtual users late when its process lacks CPU).`);
  }
  if (failures.length) {
    say();
    say(`Non-2xx responses by route and status: ${failures.join('; ')}.`);
  }
  if (net.n) {
    say();
    say(`Requests without a response: ${Object.entries(net.kinds).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  }
  if (c['errors.Failed capture or match']) {
    say();
    say(`Sessions ended early by an error answer (nothing to capture): ` +
      `${c['errors.Failed capture or match']} of ${whole.vusersCreated} virtual users.`);
  }
  if (c['aurora.runs.polled_terminal'] !== undefined) {
    const watched = (c['vusers.created_by_name.pipeline'] || 0) + (c['vusers.created_by_name.upload'] || 0);
    const done = s['aurora.run.seen_done_ms'] || {};
    say();
    say(`Runs (probe + thumbnail, one transcode worker): ${c['aurora.runs.polled_terminal']} of ` +
      `${watched} watched runs finished within their session's polls` +
      (done.p50 !== undefined ? ` (p50 ${ms(done.p50)} ms after creation)` : '') +
      `; failed or cancelled: ${c['aurora.runs.failed'] || 0}.`);
  }
  const metricsFile = path.join(dir, 'metrics.txt');
  if (fs.existsSync(metricsFile)) {
    // Aurora's own view, from /metrics after the run.
    const sum = (rx) => fs.readFileSync(metricsFile, 'utf8').split('\n')
      .filter((l) => rx.test(l)).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
    const requested = sum(/^aurora_commands_total\{command="RequestRun",outcome="accepted"\}/);
    const succeeded = sum(/^aurora_runs_finished_total\{outcome="succeeded"\}/);
    const notOk = sum(/^aurora_runs_finished_total\{outcome="(failed|cancelled)"\}/);
    const fives = sum(/^aurora_http_requests_total\{.*status="5\d\d"\}/);
    const shadow = sum(/^aurora_rate_limit_decisions_total\{.*outcome="shadow_limited"\}/);
    say();
    say(`Aurora (/metrics after the run): ${requested} runs requested, ${succeeded} succeeded and ` +
      `${notOk} failed or were cancelled by then (the rest queued behind the one worker); ` +
      `${fives} answers 5xx; ${shadow} requests the enforced presets would have refused (429).`);
  }
  if (endpoints.length) {
    say();
    say('| request | count | p50 ms | p95 ms | p99 ms | max ms | non-2xx |');
    say('|---|---:|---:|---:|---:|---:|---:|');
    for (const e of endpoints) {
      say(`| ${e.name} | ${e.count} | ${ms(e.p50)} | ${ms(e.p95)} | ${ms(e.p99)} | ${ms(e.max)} | ${e.failed} |`);
    }
  }
  const text = lines.join('\n');
  console.log(text);
  fs.writeFileSync(path.join(dir, 'summary.md'), `${text}\n`);
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify({ whole, phases: rows, endpoints }, null, 1));
}

main();
