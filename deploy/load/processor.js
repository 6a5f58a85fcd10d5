// Artillery processor for deploy/load/aurora.yml: picks the virtual user's account, sends
// the clip as an upload body, and counts what the ensure checks and scripts/load's report
// need that Artillery does not count itself.
//
// Inputs (environment, set by scripts/load):
//   AURORA_LOAD_USERS_FILE   JSON file written by setup.js: [{username, password, media_id}]
//   AURORA_LOAD_CLIP         the clip uploaded by the upload and newcomer flows
//   AURORA_LOAD_ADMIN        the admin's username
//   AURORA_LOAD_ADMIN_PASSWORD
//
// Counters (in the JSON report's counters, summed over the test and per 10 s period):
//   aurora.responses.all        every HTTP response
//   aurora.responses.failed     responses whose status is not 2xx
//   aurora.failed.<route>.<code>  the same, by route and status (for the report)
//   aurora.runs.polled_terminal runs seen finished within the VU's polling window
//   aurora.runs.failed          runs seen failed or cancelled (a valid clip must not fail)
// Histograms: aurora.run.seen_done_ms (creation to a poll seeing it finished).
// Samples: with AURORA_LOAD_SAMPLES set, one line per response is appended to that file,
//   `epoch_ms,first_byte_ms,total_ms,status,request name` — report.js computes exact
//   per-phase percentiles from them (Artillery's own summaries are per 10 s period and
//   cannot be merged into a phase's percentiles).

'use strict';

const fs = require('node:fs');
const crypto = require('node:crypto');

let users = null;
let clip = null;
let samples = null; // a file descriptor, or -1 for none

function sample(line) {
  if (samples === null) {
    const file = process.env.AURORA_LOAD_SAMPLES;
    samples = file ? fs.openSync(file, 'a') : -1;
  }
  if (samples >= 0) fs.writeSync(samples, line);
}

function pool() {
  if (users === null) {
    const file = process.env.AURORA_LOAD_USERS_FILE;
    if (!file) throw new Error('AURORA_LOAD_USERS_FILE is not set (run through scripts/load)');
    users = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!Array.isArray(users) || users.length === 0) throw new Error(`${file}: no users`);
  }
  return users;
}

function theClip() {
  if (clip === null) {
    const file = process.env.AURORA_LOAD_CLIP;
    if (!file) throw new Error('AURORA_LOAD_CLIP is not set (run through scripts/load)');
    clip = fs.readFileSync(file);
  }
  return clip;
}

// Route templates for the failure counters (bounded names, as Aurora's own metrics).
function route(method, url) {
  const path = new URL(url, 'http://x').pathname
    .replace(/\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '/{id}');
  return `${method} ${path}`;
}

// ---- flow functions: (context, events, done) ----

/** A pre-created user (setup.js): credentials and the media it uploaded. */
function pickUser(context, events, done) {
  const list = pool();
  const user = list[crypto.randomInt(list.length)];
  context.vars.username = user.username;
  context.vars.password = user.password;
  context.vars.mediaId = user.media_id;
  return done();
}

/** A username nobody has: the newcomer flow registers it. */
function newUser(context, events, done) {
  context.vars.username = `lt${Date.now().toString(36)}${crypto.randomBytes(4).toString('hex')}`;
  context.vars.password = `pw-${crypto.randomBytes(9).toString('base64url')}`;
  return done();
}

/** The admin created with `aurora admin create`. */
function pickAdmin(context, events, done) {
  context.vars.username = process.env.AURORA_LOAD_ADMIN;
  context.vars.password = process.env.AURORA_LOAD_ADMIN_PASSWORD;
  return done();
}

/** Remembers when the run was created, for aurora.run.seen_done_ms. */
function runCreated(context, events, done) {
  context.vars.runCreatedAt = Date.now();
  context.vars.polls = 0;
  return done();
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

// Polls of one run at most (Artillery ignores a loop's count when it has whileTrue).
const MAX_POLLS = Number(process.env.AURORA_LOAD_MAX_POLLS || 4);

/** loop/whileTrue: poll again while the run is unfinished, MAX_POLLS times at most. */
function runUnfinished(context, next) {
  context.vars.polls = (context.vars.polls || 0) + 1;
  return next(!TERMINAL.has(context.vars.runStatus) && context.vars.polls < MAX_POLLS);
}

/** After polling: count the run if it finished while we watched. */
function runWatched(context, events, done) {
  const status = context.vars.runStatus;
  events.emit('counter', 'aurora.runs.polled_terminal', TERMINAL.has(status) ? 1 : 0);
  const failed = status === 'failed' || status === 'cancelled';
  events.emit('counter', 'aurora.runs.failed', failed ? 1 : 0);
  if (failed && !process.env.AURORA_LOAD_QUIET) {
    console.error(`run ${context.vars.runId} ${status}: ${context.vars.failureReason}`);
  }
  if (TERMINAL.has(status)) {
    events.emit('histogram', 'aurora.run.seen_done_ms', Date.now() - context.vars.runCreatedAt);
  }
  return done();
}

// ---- request hooks ----

/** beforeRequest: the clip as the raw body of POST /api/v1/media. */
function clipBody(requestParams, context, ee, next) {
  requestParams.body = theClip();
  requestParams.headers = requestParams.headers || {};
  requestParams.headers['content-type'] = 'application/octet-stream';
  return next();
}

let logged = 0;

/** afterResponse (every request): counts failures by route and status, writes the sample. */
function countResponse(requestParams, response, context, ee, next) {
  const code = response.statusCode;
  const ok = code >= 200 && code < 300;
  ee.emit('counter', 'aurora.responses.all', 1);
  ee.emit('counter', 'aurora.responses.failed', ok ? 0 : 1);
  const timings = (response.timings && response.timings.phases) || {};
  const label = requestParams.name || 'unnamed';
  sample(`${Date.now()},${timings.firstByte ?? ''},${timings.total ?? ''},${code},${label}\n`);
  if (!ok) {
    const name = route(requestParams.method || 'GET', requestParams.url);
    ee.emit('counter', `aurora.failed.${name}.${code}`, 1);
    if (logged < 20 && !process.env.AURORA_LOAD_QUIET) {
      logged += 1;
      const body = typeof response.body === 'string' ? response.body.slice(0, 300) : '';
      console.error(`${name} -> ${code} ${body}`);
    }
  }
  return next();
}

module.exports = {
  pickUser,
  newUser,
  pickAdmin,
  runCreated,
  runUnfinished,
  runWatched,
  clipBody,
  countResponse,
};
