#!/usr/bin/env python3
"""A Firebreak trigger verifier in Python, written from docs/contract.md alone.

It is the proof that the contract is enough: it reads the exact bytes a controller receives
on `firebreak/v1/{site}/triggers`, finds the signed bytes as "What is signed" says, verifies
the Ed25519 signature with libsodium (PyNaCl: strict RFC 8032 verification, which refuses a
non-canonical S and small-order keys), and applies "The subscriber side"'s checks, giving
`accepted` or the rejection's kind.

    pip install pynacl
    python3 verify_trigger.py vectors ../vectors/triggers.json
    mosquitto_sub -t firebreak/v1/paris-1/triggers | python3 verify_trigger.py payloads --keys keys.json --site paris-1

`keys.json` is a list of {"key_id", "ed25519" (base64 public key), "gateways", "sites",
"revoked" (optional)}: what the controller trusts, each key bound to what it may speak for.
`payloads` reads one payload per line (the gateway's payloads are single-line JSON) and
prints one verdict per line; it keeps the last seq accepted per gateway (duplicates and
replays). It exits 1 when a vector's verdict differs from the one expected.
"""

import argparse
import base64
import binascii
import json
import sys
import time

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

SCHEMA = "firebreak.trigger/1"
MARK = b',"signature":{'
MAX_SKEW_MS = 60_000
MAX_SEQ_AHEAD = 10_000_000
DEFAULT_MAX_AGE_MS = 600_000


class Rejected(Exception):
    def __init__(self, kind, why):
        super().__init__(f"{kind}: {why}")
        self.kind = kind


def strict_json(data):
    """JSON that refuses duplicate keys anywhere (a decoder must not pick one)."""

    def no_duplicates(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise Rejected("malformed", f"duplicate key {key!r}")
            seen.add(key)
        return dict(pairs)

    try:
        return json.loads(data, object_pairs_hook=no_duplicates)
    except Rejected:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise Rejected("malformed", f"not JSON: {e}") from None


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def trigger_fields(t):
    """The fields every check below reads, with their types."""
    if not isinstance(t, dict) or t.get("schema") != SCHEMA:
        raise Rejected("malformed", f"not a {SCHEMA} message")
    for name in ("gateway", "site", "level", "previous"):
        if not isinstance(t.get(name), str):
            raise Rejected("malformed", f"{name} is missing or not a string")
    for name in ("seq", "issued_at_ms"):
        if not is_uint(t.get(name)):
            raise Rejected("malformed", f"{name} is missing or not an integer >= 0")
    return t


class Verifier:
    def __init__(self, keys, site, max_age_ms=DEFAULT_MAX_AGE_MS):
        self.keys = {k["key_id"]: k for k in keys}
        self.site = site
        self.max_age_ms = max_age_ms
        self.last = {}  # gateway -> last seq accepted
        self.accepted = {}  # gateway -> set of seqs accepted

    def check(self, payload, now_ms):
        """The trigger (a dict) if accepted; raises Rejected otherwise; None for a duplicate."""
        whole = trigger_fields(strict_json(payload))
        if "signature" not in whole:
            raise Rejected("unsigned", "the trigger carries no signature")
        # What is signed: the bytes before the last ',"signature":{', and a '}'.
        at = payload.rfind(MARK)
        if at < 0 or not payload.endswith(b"}"):
            raise Rejected("malformed", "no signature member at the end")
        canonical = payload[:at] + b"}"
        signature = strict_json(payload[at + len(MARK) - 1 : -1])
        if signature != whole["signature"] or not isinstance(signature, dict):
            raise Rejected("malformed", "the signature is not the last member")
        key_id = signature.get("key_id")
        key = self.keys.get(key_id)
        if key is None:
            raise Rejected("unknown-key", f"key {key_id!r} is not trusted")
        try:
            sig = base64.b64decode(signature.get("ed25519", ""), validate=True)
            public = base64.b64decode(key["ed25519"], validate=True)
            VerifyKey(public).verify(canonical, sig)
        except (BadSignatureError, binascii.Error, ValueError, TypeError) as e:
            raise Rejected("bad-signature", f"does not verify with key {key_id!r}: {e}") from None
        # Act on the signed bytes only.
        t = trigger_fields(strict_json(canonical))
        if key.get("revoked"):
            raise Rejected("key-not-granted", f"key {key_id!r} is revoked")
        if t["gateway"] not in key["gateways"]:
            raise Rejected("key-not-granted", f"key {key_id!r} may not sign for gateway {t['gateway']}")
        if t["site"] not in key["sites"]:
            raise Rejected("key-not-granted", f"key {key_id!r} may not sign for site {t['site']}")
        if t["site"] != self.site:
            raise Rejected("wrong-site", f"about site {t['site']}, watching {self.site}")
        if t["issued_at_ms"] > now_ms + MAX_SKEW_MS:
            raise Rejected("future", f"issued {(t['issued_at_ms'] - now_ms) // 1000} s ahead")
        if t["seq"] > t["issued_at_ms"] + MAX_SEQ_AHEAD:
            raise Rejected("seq-ahead", f"seq {t['seq']} is far above its issue time")
        seen = self.accepted.setdefault(t["gateway"], set())
        if t["seq"] in seen:
            return None
        last = self.last.get(t["gateway"])
        if last is not None and t["seq"] <= last:
            raise Rejected("replayed", f"seq {t['seq']} is not above {last}")
        if now_ms - t["issued_at_ms"] > self.max_age_ms:
            raise Rejected("stale", f"issued {(now_ms - t['issued_at_ms']) // 1000} s ago")
        seen.add(t["seq"])
        self.last[t["gateway"]] = t["seq"]
        return t


def verdict(verifier, payload, now_ms):
    try:
        t = verifier.check(payload, now_ms)
    except Rejected as r:
        return r.kind, str(r)
    if t is None:
        return "duplicate", "already accepted"
    return "accepted", f"{t['level']} from {t['gateway']} seq {t['seq']}"


def run_vectors(path):
    doc = json.load(open(path, encoding="utf-8"))
    failed = 0
    for v in doc["vectors"]:
        verifier = Verifier(doc["keys"], doc["site"], doc["max_age_ms"])
        kind, detail = verdict(verifier, v["payload"].encode("utf-8"), doc["now_ms"])
        if kind == v["expect"]:
            print(f"ok {v['name']}: {kind}")
        else:
            failed += 1
            print(f"FAIL {v['name']}: got {kind} ({detail}), expected {v['expect']}")
    return 1 if failed else 0


def run_payloads(keys_path, site, max_age_ms):
    keys = json.load(open(keys_path, encoding="utf-8"))
    verifier = Verifier(keys, site, max_age_ms)
    for line in sys.stdin.buffer:
        payload = line.rstrip(b"\r\n")
        if not payload:
            continue
        kind, detail = verdict(verifier, payload, int(time.time() * 1000))
        print(f"{kind} {detail}", flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("vectors", help="check every vector of a vectors file")
    v.add_argument("file")
    c = sub.add_parser("payloads", help="verify payloads read one per line from stdin")
    c.add_argument("--keys", required=True)
    c.add_argument("--site", required=True)
    c.add_argument("--max-age-ms", type=int, default=DEFAULT_MAX_AGE_MS)
    a = p.parse_args()
    if a.command == "vectors":
        return run_vectors(a.file)
    return run_payloads(a.keys, a.site, a.max_age_ms)


if __name__ == "__main__":
    sys.exit(main())
