#!/usr/bin/env python3
"""Self-check of attenuate.py using only biscuit-python (no Rust build needed).

Mints a token shaped like the gateway's (root_key_id 0), attenuates it through the
attenuate.py CLI with both key spellings, and checks with biscuit-python's Authorizer that
the result allows operation("runs:read") and refuses operation("runs:create"), while the
unattenuated token allows both. Exits non-zero on any failure.

  <venv>/bin/python scripts/biscuit-interop/selfcheck.py
"""
import os
import subprocess
import sys
from datetime import datetime, timezone

import biscuit_auth as ba

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def expect(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def attenuate(token: str, key: str, *checks: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, os.path.join(HERE, "attenuate.py"), "--public-key", key]
    for c in checks:
        argv += ["--check", c]
    return subprocess.run(argv, input=token, capture_output=True, text=True)


def allowed(token: str, root: ba.PublicKey, op: str) -> bool:
    biscuit = ba.Biscuit.from_base64(token, lambda _id=None: root)
    authz = ba.AuthorizerBuilder(
        "time({now}); operation({op}); allow if true;",
        {"now": datetime.now(timezone.utc), "op": op},
    ).build(biscuit)
    try:
        authz.authorize()
        return True
    except ba.AuthorizationError:
        return False


root = ba.KeyPair()
builder = ba.BiscuitBuilder(
    'user("alice"); role("user"); tier("free"); token_id("x"); token_kind("session");'
    " check if time($t), $t < 2030-01-01T00:00:00Z;"
)
builder.set_root_key_id(0)
token = builder.build(root.private_key).to_base64()
expect(ba.UnverifiedBiscuit.from_base64(token).root_key_id() == 0, "minted token carries root_key_id 0")
expect(allowed(token, root.public_key, "runs:create"), "unattenuated token allows runs:create")

display_key = str(root.public_key)  # "ed25519/<hex>"
raw_hex = bytes(root.public_key.to_bytes()).hex()
checks = ('check if operation("runs:read")', "check if time($t), $t < 2030-01-01T00:00:00Z")
for key in (display_key, raw_hex):
    r = attenuate(token, key, *checks)
    expect(r.returncode == 0 and r.stderr == "", f"attenuate.py succeeds with key {key[:12]}...")
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        continue
    new = r.stdout.strip()
    b = ba.Biscuit.from_base64(new, lambda _id=None: root.public_key)
    expect(b.block_count() == 2, "attenuated token has exactly one extra block")
    expect(all(c in b.block_source(1) for c in checks), "the new block holds every check")
    expect(allowed(new, root.public_key, "runs:read"), "attenuated token allows runs:read")
    expect(not allowed(new, root.public_key, "runs:create"), "attenuated token refuses runs:create")

r = attenuate(token, str(ba.KeyPair().public_key), checks[0])
expect(r.returncode == 1 and r.stdout == "" and r.stderr, "wrong root key: exit 1, message on stderr")
r = attenuate(token, display_key, "check if not valid datalog (")
expect(r.returncode == 1 and r.stdout == "" and r.stderr, "bad datalog: exit 1, message on stderr")

print(f"{len(failures)} failed" if failures else "selfcheck passed")
sys.exit(1 if failures else 0)
