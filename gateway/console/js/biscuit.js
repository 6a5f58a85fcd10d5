// Biscuit tokens in the browser, for narrowing an API key without the server.
//
// The vendored @biscuit-auth/biscuit-wasm 0.6.0 (vendor/biscuit-wasm/VENDORED.md) is a
// wasm-pack *bundler* build: its entry module does `import * as wasm from
// "./biscuit_bg.wasm"`, which browsers cannot import. So this module does what a bundler
// would: it instantiates the .wasm itself with the two import modules the binary names
// (the JS glue `./biscuit_bg.js` and one snippet giving `performance_now`), hands the
// exports to the glue, and runs the start function. Nothing loads until `loadBiscuit()` is
// called: the keys page calls it only when someone narrows a key.
//
// The pure parts (`narrowingChecks`, `describeBiscuitError`, `parsePublicKey`) need no
// DOM; the whole module runs in node too (pass the .wasm bytes to `loadBiscuit`).

import * as bg from "../vendor/biscuit-wasm/biscuit_bg.js";
import * as snippet from "../vendor/biscuit-wasm/snippets/biscuit-auth-314ca57174ae0e6d/inline0.js";

/** Where the binary is, next to its glue. */
export const WASM_URL = new URL("../vendor/biscuit-wasm/biscuit_bg.wasm", import.meta.url);

/** The import object: module names exactly as the binary's import section has them. */
const IMPORTS = {
  "./biscuit_bg.js": bg,
  "./snippets/biscuit-auth-314ca57174ae0e6d/inline0.js": snippet,
};

/** Most blocks the server accepts in a token (gateway/src/auth/tokens.rs MAX_BLOCKS). */
export const MAX_BLOCKS = 16;
/** Largest token the server reads, bytes of base64 (MAX_TOKEN_BYTES). */
export const MAX_TOKEN_BYTES = 8 * 1024;

let loading = null;

async function instantiate(source) {
  if (source) return WebAssembly.instantiate(source, IMPORTS);
  const response = await fetch(WASM_URL, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`could not load the Biscuit library (HTTP ${response.status})`);
  if (WebAssembly.instantiateStreaming) {
    try {
      return await WebAssembly.instantiateStreaming(response.clone(), IMPORTS);
    } catch (error) {
      // Served with another content type than application/wasm: compile from the bytes.
      if (!(error instanceof TypeError)) throw error;
    }
  }
  return WebAssembly.instantiate(await response.arrayBuffer(), IMPORTS);
}

/**
 * Loads and starts biscuit-wasm once; resolves to its classes (Biscuit, BlockBuilder,
 * PublicKey, KeyPair, AuthorizerBuilder, SignatureAlgorithm, …). `source`: the .wasm bytes
 * (node, tests); by default it is fetched from WASM_URL.
 */
export function loadBiscuit(source) {
  if (!loading) {
    loading = instantiate(source)
      .then(({ instance }) => {
        bg.__wbg_set_wasm(instance.exports);
        instance.exports.__wbindgen_start();
        return bg;
      })
      .catch((error) => {
        loading = null;
        throw error;
      });
  }
  return loading;
}

/** A biscuit-wasm error (a plain object such as {Format: {Signature: …}}) in words. */
export function describeBiscuitError(error) {
  if (error instanceof Error) return error.message;
  if (typeof error === "string") return error;
  const walk = (value, path) => {
    if (value === null || value === undefined) return path.join(": ");
    if (typeof value !== "object") return [...path, String(value)].join(": ");
    const keys = Object.keys(value);
    if (keys.length === 0) return path.join(": ");
    if (keys.length === 1) return walk(value[keys[0]], [...path, keys[0]]);
    return [...path, JSON.stringify(value)].join(": ");
  };
  try {
    return walk(error, []) || "unknown error";
  } catch {
    return String(error);
  }
}

/** Is this error a signature that does not verify (wrong root key)? */
function isSignatureError(error) {
  const text = JSON.stringify(error ?? "");
  return /Signature|InvalidKey|UnknownPublicKey|RootKey/i.test(text);
}

/**
 * A PublicKey from the server's text: biscuit-auth 6 prints keys as `ed25519/<hex>` (or
 * `secp256r1/<hex>`); bare hex is taken as Ed25519. biscuit-wasm's PublicKey.fromString
 * wants the hex and the algorithm apart.
 */
export function parsePublicKey(lib, text) {
  const raw = String(text).trim();
  const slash = raw.indexOf("/");
  const algorithm = slash < 0 ? "ed25519" : raw.slice(0, slash).toLowerCase();
  const hex = slash < 0 ? raw : raw.slice(slash + 1);
  const which = {
    ed25519: lib.SignatureAlgorithm.Ed25519,
    secp256r1: lib.SignatureAlgorithm.Secp256r1,
  }[algorithm];
  if (which === undefined) throw new Error(`unknown key algorithm "${algorithm}"`);
  return lib.PublicKey.fromString(hex, which);
}

/** The token as pasted: without "Bearer ", quotes or whitespace. */
export function cleanToken(text) {
  return String(text || "")
    .trim()
    .replace(/^Bearer\s+/i, "")
    .replace(/^["']|["']$/g, "")
    .replace(/\s+/g, "");
}

/**
 * Parses a token and checks its signatures against the server's root keys
 * ([{id, public_key}] as GET /api/v1/auth/keys lists them), trying each key: the token
 * names its key by id, but biscuit-wasm's key-provider form aborts the wasm instance when
 * the provider has no key to give, so the plain form is tried key by key (a wrong key is
 * a clean signature error). Returns {biscuit, keyId}.
 */
export function parseToken(lib, token, keys) {
  const text = cleanToken(token);
  if (!text) throw new Error("paste a token first");
  if (!/^[A-Za-z0-9_\-+/]+=*$/.test(text)) throw new Error("this is not a token: a token is URL-safe base64");
  if (!keys.length) throw new Error("the server listed no root keys");
  let last = null;
  // The signing key (newest) first: most tokens are signed by it.
  const ordered = [...keys].sort((a, b) => Number(!!b.signing) - Number(!!a.signing));
  for (const key of ordered) {
    let publicKey;
    try {
      publicKey = parsePublicKey(lib, key.public_key);
    } catch (error) {
      last = error;
      continue;
    }
    try {
      return { biscuit: lib.Biscuit.fromBase64(text, publicKey), keyId: key.id };
    } catch (error) {
      last = error;
      if (!isSignatureError(error)) break;
    } finally {
      publicKey.free();
    }
  }
  if (last && isSignatureError(last)) {
    throw new Error("this token is not signed by any of this server's root keys (another server's token, or altered)");
  }
  throw new Error(`this is not an Aurora token: it does not decode as a Biscuit token (${describeBiscuitError(last)})`);
}

/** A run id as the server writes it (a UUID, lower case), or null if it is not one. */
export function canonicalRunId(text) {
  const value = String(text || "").trim().toLowerCase();
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value) ? value : null;
}

/** A time as a Biscuit date literal: RFC 3339, UTC, whole seconds. */
export function datalogDate(date) {
  return new Date(Math.floor(date.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * The checks a narrowing block carries, matching what the gateway states for each request
 * (gateway/src/auth/tokens.rs): `time($t)`, `operation($op)`, and `resource("run", $id)`
 * when the request is on one run.
 * - readOnly: operations ending in ":read", and "runs:subscribe" (following runs is
 *   reading: the server's viewer policy allows it too);
 * - runId: only requests on that run (listing runs states no resource: such a key cannot
 *   list, only read that run, its events and artifacts);
 * - expiry: only before that time.
 */
export function narrowingChecks({ readOnly = false, runId = null, expiry = null } = {}) {
  const checks = [];
  if (readOnly) {
    checks.push('check if operation($op), $op.ends_with(":read") || $op == "runs:subscribe";');
  }
  if (runId) {
    const id = canonicalRunId(runId);
    if (!id) throw new Error("the run id is not a UUID");
    checks.push(`check if resource("run", "${id}");`);
  }
  if (expiry) {
    checks.push(`check if time($t), $t < ${datalogDate(expiry)};`);
  }
  return checks;
}

/**
 * Appends one block of `checks` to `biscuit`. Returns {token, blockSource, blocks}: the new
 * token (URL-safe base64), the appended block as the library prints it, and how many
 * blocks the token now has.
 */
export function attenuate(lib, biscuit, checks) {
  const block = lib.Biscuit.block_builder();
  block.addCode(checks.join("\n"));
  const narrowed = biscuit.appendBlock(block);
  const blocks = narrowed.countBlocks();
  return { token: narrowed.toBase64(), blockSource: narrowed.getBlockSource(blocks - 1), blocks, biscuit: narrowed };
}

/** What the authority block (block 0) says: user, role, tier, kind, expiry (when found). */
export function authorityClaims(biscuit) {
  const source = biscuit.getBlockSource(0);
  const one = (name) => source.match(new RegExp(`\\b${name}\\("((?:[^"\\\\]|\\\\.)*)"\\)`))?.[1] ?? null;
  const expiry = source.match(/\$\w+\s*<\s*(\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d))/)?.[1] ?? null;
  return {
    user: one("user"),
    role: one("role"),
    tier: one("tier"),
    tokenId: one("token_id"),
    kind: one("token_kind"),
    expiresAt: expiry ? new Date(expiry) : null,
    source,
  };
}
