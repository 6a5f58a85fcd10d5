// Signs one webhook message with the Standard Webhooks reference library (npm
// `standardwebhooks`), an implementation outside Aurora, for the identity webhook tests.
//
//   node sign.mjs --secret whsec_... --id msg_... [--timestamp SECONDS] < body.json
//
// Prints {"id", "timestamp", "signature"}: the values of the webhook-id, webhook-timestamp
// and webhook-signature headers (Svix, which Clerk sends through, names them svix-*).
// Install with `npm ci` here (scripts/test does).
import { Webhook } from "standardwebhooks";

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const secret = arg("secret");
const id = arg("id");
if (!secret || !id) {
  console.error("usage: node sign.mjs --secret whsec_... --id msg_... [--timestamp SECONDS] < body");
  process.exit(2);
}
const seconds = Number(arg("timestamp") ?? Math.floor(Date.now() / 1000));
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const body = Buffer.concat(chunks);
const signature = new Webhook(secret).sign(id, new Date(seconds * 1000), body);
process.stdout.write(JSON.stringify({ id, timestamp: String(seconds), signature }));
