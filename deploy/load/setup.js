#!/usr/bin/env node
// The load test's user pool, made before Artillery starts (not measured): registers N
// users, logs each in once and uploads the clip as that user, then writes
// [{username, password, media_id}] as JSON for processor.js.
//
//   node setup.js --target http://127.0.0.1:PORT --users 200 --clip clip.mp4 --out users.json
//
// Needs Node >= 18 (global fetch). Exits non-zero on the first failure, naming it.

'use strict';

const fs = require('node:fs');
const crypto = require('node:crypto');

function args() {
  const out = { target: 'http://127.0.0.1:8080', users: 200, concurrency: 4 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    out[key] = argv[i + 1];
  }
  out.users = Number(out.users);
  out.concurrency = Number(out.concurrency);
  if (!out.clip || !out.out) {
    throw new Error('usage: setup.js --target URL --users N --clip FILE --out FILE');
  }
  return out;
}

async function call(target, method, path, { token, json, body, type } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (type) {
    headers['content-type'] = type;
  }
  const response = await fetch(`${target}${path}`, { method, headers, body });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`${method} ${path} -> ${response.status} ${text.slice(0, 300)}`);
  }
  return text ? JSON.parse(text) : null;
}

async function makeUser(opts, clip, index) {
  const run = crypto.randomBytes(3).toString('hex');
  const username = `load${run}u${index}`;
  const password = `pw-${crypto.randomBytes(12).toString('base64url')}`;
  await call(opts.target, 'POST', '/api/v1/auth/register', { json: { username, password } });
  const { token } = await call(opts.target, 'POST', '/api/v1/auth/login', {
    json: { username, password },
  });
  const media = await call(opts.target, 'POST', '/api/v1/media', {
    token,
    body: clip,
    type: 'application/octet-stream',
  });
  return { username, password, media_id: media.id };
}

async function main() {
  const opts = args();
  const clip = fs.readFileSync(opts.clip);
  const users = new Array(opts.users);
  let next = 0;
  const started = Date.now();
  async function worker() {
    while (next < opts.users) {
      const index = next++;
      users[index] = await makeUser(opts, clip, index);
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  fs.writeFileSync(opts.out, JSON.stringify(users));
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`setup: ${users.length} users with a clip each in ${seconds} s`);
}

main().catch((error) => {
  console.error(`setup: ${error.message}`);
  process.exit(1);
});
