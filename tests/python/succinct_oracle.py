"""python-tuf's answers for TAP 15 succinct hash bins (SuccinctRoles), and CPython's
int(math.log(n, 2)), which RSTUF uses to turn a number of bins into a bit length.

Reads one JSON request on stdin and writes the answer as JSON on stdout:
  {"op": "for_target", "bit_lengths": [b...], "paths": [p...]}
      -> {"<b>": [get_role_for_target(p)...]}
  {"op": "roles", "bit_lengths": [b...], "full_up_to": n}
      -> {"<b>": {"count", "first", "last", "sha256" (of "\n".join), "all" (when count <= n)}}
  {"op": "is_delegated", "bit_lengths": [b...], "names": [name...]}
      -> {"<b>": [is_delegated_role(name)...]}
  {"op": "log2", "numbers": [n...]} -> [int(math.log(n, 2))...]
  {"op": "construct", "bit_lengths": [b...]} -> [constructor accepts b...]
"""
import hashlib
import json
import math
import sys

from tuf.api.metadata import SuccinctRoles


def bins(bit_length):
    return SuccinctRoles(keyids=["k"], threshold=1, bit_length=bit_length, name_prefix="bins")


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    if op == "for_target":
        out = {}
        for b in req["bit_lengths"]:
            sr = bins(b)
            out[str(b)] = [sr.get_role_for_target(p) for p in req["paths"]]
    elif op == "roles":
        out = {}
        for b in req["bit_lengths"]:
            roles = list(bins(b).get_roles())
            entry = {
                "count": len(roles),
                "first": roles[0],
                "last": roles[-1],
                "sha256": hashlib.sha256("\n".join(roles).encode()).hexdigest(),
            }
            if len(roles) <= req["full_up_to"]:
                entry["all"] = roles
            out[str(b)] = entry
    elif op == "is_delegated":
        out = {}
        for b in req["bit_lengths"]:
            sr = bins(b)
            out[str(b)] = [sr.is_delegated_role(n) for n in req["names"]]
    elif op == "log2":
        out = [int(math.log(n, 2)) for n in req["numbers"]]
    elif op == "construct":
        out = []
        for b in req["bit_lengths"]:
            try:
                bins(b)
                out.append(True)
            except ValueError:
                out.append(False)
    else:
        raise SystemExit(f"unknown op {op!r}")
    json.dump(out, sys.stdout)


main()
