#!/usr/bin/env python3
"""A Firebreak trigger, state and status verifier in Python, written from docs/contract.md alone.

It is the proof that the contract is enough: it reads the exact bytes a controller receives
on `firebreak/v1/{site}/triggers`, the retained `state` topics and the gateways' `status`,
finds the signed bytes as "What is signed" says, verifies the Ed25519 signature with
libsodium (PyNaCl: strict RFC 8032 verification, which refuses a non-canonical S and
small-order keys), and applies "The subscriber side"'s checks, giving `accepted`,
`duplicate` or the rejection's kind. A drill (`firebreak.drill/1`, on
`firebreak/v1/{site}/drill/{gateway}`, "Drills") is checked like a trigger up to its age and
reported as `drill`: never a level, and it changes nothing the verifier holds.

    pip install pynacl
    python3 verify_trigger.py vectors ../vectors/triggers.json
    python3 verify_trigger.py vectors ../vectors/sequences.json
    mosquitto_sub -t firebreak/v1/paris-1/triggers | python3 verify_trigger.py payloads --keys keys.json --site paris-1
    mosquitto_sub -v -t 'firebreak/v1/paris-1/#' | python3 verify_trigger.py payloads --topics --keys keys.json --site paris-1

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
STATUS_SCHEMA = "firebreak.status/1"
DRILL_SCHEMA = "firebreak.drill/1"
MARK = b',"signature":{'
MAX_SKEW_MS = 60_000
MAX_SEQ_AHEAD = 10_000_000
MAX_EPOCH_AHEAD = 1_000_000
SILENT_AFTER_HEARTBEATS = 3
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


def fields(m, schema, strings, integers, optional_integers=()):
    """The fields every check below reads, with their types."""
    if not isinstance(m, dict) or m.get("schema") != schema:
        raise Rejected("malformed", f"not a {schema} message")
    for name in strings:
        if not isinstance(m.get(name), str):
            raise Rejected("malformed", f"{name} is missing or not a string")
    for name in integers:
        if not is_uint(m.get(name)):
            raise Rejected("malformed", f"{name} is missing or not an integer >= 0")
    for name in optional_integers:
        if name in m and not is_uint(m[name]):
            raise Rejected("malformed", f"{name} is not an integer >= 0")
    return m


def trigger_fields(t):
    t = fields(t, SCHEMA, ("gateway", "site", "level", "previous"), ("seq", "issued_at_ms"), ("epoch",))
    if t.get("drill", False) is not False:
        raise Rejected("malformed", "a trigger that says drill: a drill is a firebreak.drill/1 message")
    return t


def drill_fields(t):
    t = fields(t, DRILL_SCHEMA, ("gateway", "site", "level", "previous"), ("seq", "issued_at_ms"), ("epoch",))
    if t.get("drill") is not True:
        raise Rejected("malformed", "a firebreak.drill/1 message says drill: true")
    return t


def is_drill(payload):
    """Whether the payload claims to be a drill (then checked as one, never as a trigger)."""
    try:
        m = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(m, dict) and m.get("schema") == DRILL_SCHEMA


def status_fields(s):
    s = fields(s, STATUS_SCHEMA, ("gateway", "site", "state"), ("issued_at_ms",), ("heartbeat_s",))
    for name in ("epoch", "session", "beat"):
        if not is_uint(s.get(name)):
            raise Rejected("malformed", f"a signed status names its epoch, session and beat ({name})")
    return s


def in_time(m, now_ms):
    """Not from the future; a boot epoch not far beyond its issue time."""
    if m["issued_at_ms"] > now_ms + MAX_SKEW_MS:
        raise Rejected("future", f"issued {(m['issued_at_ms'] - now_ms) // 1000} s ahead")
    if "epoch" in m and m["epoch"] > m["issued_at_ms"] // 1000 + MAX_EPOCH_AHEAD:
        raise Rejected("epoch-ahead", f"epoch {m['epoch']} is far above its issue time")


class Verifier:
    def __init__(self, keys, site, max_age_ms=DEFAULT_MAX_AGE_MS):
        self.keys = {k["key_id"]: k for k in keys}
        self.site = site
        self.max_age_ms = max_age_ms
        self.last = {}  # gateway -> last seq accepted
        self.accepted = {}  # gateway -> set of seqs accepted
        self.epochs = {}  # gateway -> highest epoch accepted
        self.scopes = {}  # (gateway, zone or None) -> highest seq accepted or taken from a state
        self.statuses = {}  # gateway -> (latest epoch, {session: (beat, state)})

    def signed(self, payload, parse):
        """Steps 1-5 of "What is signed", then the key's grants: (message, key_id)."""
        whole = parse(strict_json(payload))
        if "signature" not in whole:
            raise Rejected("unsigned", "the message carries no signature")
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
        m = parse(strict_json(canonical))
        if key.get("revoked"):
            raise Rejected("key-not-granted", f"key {key_id!r} is revoked")
        if m["gateway"] not in key["gateways"]:
            raise Rejected("key-not-granted", f"key {key_id!r} may not sign for gateway {m['gateway']}")
        if m["site"] not in key["sites"]:
            raise Rejected("key-not-granted", f"key {key_id!r} may not sign for site {m['site']}")
        return m, key_id

    def about_this_site(self, m):
        if m["site"] != self.site:
            raise Rejected("wrong-site", f"about site {m['site']}, watching {self.site}")

    def check(self, payload, now_ms):
        """A trigger: the trigger (a dict) if accepted; raises Rejected; None for a duplicate."""
        t, _ = self.signed(payload, trigger_fields)
        in_time(t, now_ms)
        if t["seq"] > t["issued_at_ms"] + MAX_SEQ_AHEAD:
            raise Rejected("seq-ahead", f"seq {t['seq']} is far above its issue time")
        self.about_this_site(t)
        gateway, scope = t["gateway"], (t["gateway"], t.get("zone"))
        seen = self.accepted.setdefault(gateway, set())
        if t["seq"] in seen:
            return None
        last = self.last.get(gateway)
        if last is not None and t["seq"] <= last:
            raise Rejected("replayed", f"seq {t['seq']} is not above {last}")
        if t["seq"] < self.scopes.get(scope, -1):
            raise Rejected("superseded", f"seq {t['seq']} is older than the state taken for its scope")
        if "epoch" in t and t["epoch"] < self.epochs.get(gateway, -1):
            raise Rejected("old-epoch", f"epoch {t['epoch']} is before one accepted, with a higher seq")
        if now_ms - t["issued_at_ms"] > self.max_age_ms:
            raise Rejected("stale", f"issued {(now_ms - t['issued_at_ms']) // 1000} s ago")
        seen.add(t["seq"])
        self.last[gateway] = t["seq"]
        if "epoch" in t:
            self.epochs[gateway] = max(t["epoch"], self.epochs.get(gateway, -1))
        self.scopes[scope] = max(t["seq"], self.scopes.get(scope, -1))
        return t

    def check_drill(self, payload, now_ms):
        """A drill: the drill (a dict) if genuine; raises Rejected. Checked like a trigger up
        to its age; it is never a level and changes nothing this verifier holds (no seq, no
        scope, no epoch), so it makes no gap and no replay among the triggers."""
        d, _ = self.signed(payload, drill_fields)
        in_time(d, now_ms)
        if d["seq"] > d["issued_at_ms"] + MAX_SEQ_AHEAD:
            raise Rejected("seq-ahead", f"seq {d['seq']} is far above its issue time")
        self.about_this_site(d)
        if now_ms - d["issued_at_ms"] > self.max_age_ms:
            raise Rejected("stale", f"issued {(now_ms - d['issued_at_ms']) // 1000} s ago")
        return d

    def check_state(self, payload, now_ms):
        """A retained state: the trigger it holds, if taken; raises Rejected."""
        t, _ = self.signed(payload, trigger_fields)
        in_time(t, now_ms)
        if t["seq"] > t["issued_at_ms"] + MAX_SEQ_AHEAD:
            raise Rejected("seq-ahead", f"seq {t['seq']} is far above its issue time")
        self.about_this_site(t)
        scope = (t["gateway"], t.get("zone"))
        if t["seq"] < self.scopes.get(scope, -1):
            raise Rejected("old-state", f"seq {t['seq']} is older than seq {self.scopes[scope]} seen for its scope")
        self.scopes[scope] = t["seq"]
        return t

    def check_status(self, payload, now_ms):
        """A gateway status: the status if taken; raises Rejected; None when it says nothing
        new. Each connection (epoch, session) of the gateway's latest boot is followed on its
        own: a gateway has one per broker, and their statuses share one topic."""
        s, _ = self.signed(payload, status_fields)
        in_time(s, now_ms)
        self.about_this_site(s)
        epoch, sessions = self.statuses.get(s["gateway"], (-1, {}))
        if s["epoch"] < epoch:
            raise Rejected("old-session", f"epoch {s['epoch']} is before epoch {epoch} already seen")
        if s["epoch"] > epoch:
            epoch, sessions = s["epoch"], {}
        self.statuses[s["gateway"]] = (epoch, sessions)
        last = sessions.get(s["session"])
        if last is not None:
            beat, state = last
            if state == "offline" and s["state"] == "offline":
                return None
            if state == "offline":
                raise Rejected("replayed", "online after its connection's offline")
            if s["state"] == "online" and s["beat"] == beat:
                return None
            if s["state"] == "online" and s["beat"] < beat:
                raise Rejected("replayed", f"beat {s['beat']} is not after beat {beat}")
        sessions[s["session"]] = (s["beat"], s["state"])
        age_ms = max(0, now_ms - s["issued_at_ms"])
        s["silent"] = s["state"] == "online" and age_ms > SILENT_AFTER_HEARTBEATS * 1000 * s.get("heartbeat_s", 10)
        return s


def verdict(verifier, kind, payload, now_ms):
    """(verdict, detail) for one message of `kind`: trigger, state, status or drill. A drill
    on a trigger topic is still a drill, never a trigger."""
    if kind == "trigger" and is_drill(payload):
        kind = "drill"
    try:
        if kind == "drill":
            d = verifier.check_drill(payload, now_ms)
            zone = f" zone {d['zone']}" if "zone" in d else ""
            return "drill", f"{d['level']} site {d['site']}{zone} from {d['gateway']} (a drill: never a level)"
        if kind == "state":
            m = verifier.check_state(payload, now_ms)
        elif kind == "status":
            m = verifier.check_status(payload, now_ms)
        else:
            m = verifier.check(payload, now_ms)
    except Rejected as r:
        return r.kind, str(r)
    if m is None:
        return "duplicate", "already taken"
    if kind == "status":
        silent = " silent" if m["silent"] else ""
        return "accepted", f"{m['state']}{silent} from {m['gateway']} epoch {m['epoch']} session {m['session']}"
    return "accepted", f"{m['level']} from {m['gateway']} seq {m['seq']}"


def run_vectors(path):
    """A vectors file: each vector is one message, or a sequence of messages given to one
    fresh verifier in order, each with its expected verdict."""
    doc = json.load(open(path, encoding="utf-8"))
    failed = 0
    for v in doc["vectors"]:
        verifier = Verifier(doc["keys"], doc["site"], doc["max_age_ms"])
        steps = v.get("steps", [v])
        for i, step in enumerate(steps):
            kind, detail = verdict(
                verifier,
                step.get("kind", "trigger"),
                step["payload"].encode("utf-8"),
                doc["now_ms"],
            )
            name = v["name"] if len(steps) == 1 else f"{v['name']} step {i + 1}"
            if kind == step["expect"]:
                print(f"ok {name}: {kind}")
            else:
                failed += 1
                print(f"FAIL {name}: got {kind} ({detail}), expected {step['expect']}")
    return 1 if failed else 0


def kind_of(topic):
    if "/telemetry/" in topic:
        return "telemetry"
    if "/drill/" in topic:
        return "drill"
    if topic.endswith("/status"):
        return "status"
    if topic.endswith("/state"):
        return "state"
    return "trigger"


def run_payloads(keys_path, site, max_age_ms, topics):
    keys = json.load(open(keys_path, encoding="utf-8"))
    verifier = Verifier(keys, site, max_age_ms)
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\r\n")
        if not line:
            continue
        kind, payload = "trigger", line
        if topics:
            # mosquitto_sub -v: the topic, a space, the payload.
            topic, _, payload = line.partition(b" ")
            kind = kind_of(topic.decode("utf-8", "replace"))
            if kind == "telemetry":
                # Not signed, and never acted on (docs/contract.md).
                print("skipped telemetry (not signed: for people, never acted on)", flush=True)
                continue
        got, detail = verdict(verifier, kind, payload, int(time.time() * 1000))
        print(f"{got} {kind} {detail}" if topics else f"{got} {detail}", flush=True)
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
    c.add_argument(
        "--topics",
        action="store_true",
        help="each line is 'TOPIC PAYLOAD' (mosquitto_sub -v): triggers, states and statuses",
    )
    a = p.parse_args()
    if a.command == "vectors":
        return run_vectors(a.file)
    return run_payloads(a.keys, a.site, a.max_age_ms, a.topics)


if __name__ == "__main__":
    sys.exit(main())
