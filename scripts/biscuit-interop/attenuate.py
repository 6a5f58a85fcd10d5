#!/usr/bin/env python3
"""Attenuate a Biscuit token with biscuit-python, outside the Rust code base.

Reads a base64url token on stdin, verifies it against the root public key, appends ONE
block holding every --check, and prints the new token (base64url, as biscuit-auth's
to_base64) on stdout. Errors go to stderr with exit status 1.

  attenuate.py --public-key ed25519/<hex>|<hex> --check 'check if operation("runs:read")' [--check ...] < token

The key is required: biscuit-python 0.4.0 can append to an UnverifiedBiscuit but cannot
serialize one, so a keyless attenuation is not possible with it.
"""
import argparse
import sys

import biscuit_auth as ba


def public_key(text: str) -> ba.PublicKey:
    text = text.strip()
    if text.startswith("ed25519/"):  # biscuit-auth's Display form of a PublicKey
        return ba.PublicKey(text)
    return ba.PublicKey.from_bytes(bytes.fromhex(text), ba.Algorithm.Ed25519)  # raw 32 bytes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--public-key", required=True, help="root key: ed25519/<hex> or hex of the raw 32 bytes")
    p.add_argument("--check", action="append", required=True, help="a datalog check (repeatable)")
    args = p.parse_args()
    try:
        root = public_key(args.public_key)
        token = sys.stdin.read().strip()
        # The provider receives the token's root_key_id (or None); the caller passes the matching key.
        biscuit = ba.Biscuit.from_base64(token, lambda _root_key_id=None: root)
        block = ba.BlockBuilder("".join(c.strip().rstrip(";") + ";\n" for c in args.check))
        print(biscuit.append(block).to_base64())
    except Exception as e:  # noqa: BLE001 - any failure is reported the same way
        print(f"attenuate: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
