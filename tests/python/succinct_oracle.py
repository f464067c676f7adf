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


def per_bit_length(req, answer):
    """{"<b>": answer(bins(b))} for each bit length b of the request."""
    return {str(b): answer(bins(b)) for b in req["bit_lengths"]}


def roles_summary(sr, full_up_to):
    roles = list(sr.get_roles())
    entry = {
        "count": len(roles),
        "first": roles[0],
        "last": roles[-1],
        "sha256": hashlib.sha256("\n".join(roles).encode()).hexdigest(),
    }
    if len(roles) <= full_up_to:
        entry["all"] = roles
    return entry


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    if op == "for_target":
        out = per_bit_length(req, lambda sr: [sr.get_role_for_target(p) for p in req["paths"]])
    elif op == "roles":
        out = per_bit_length(req, lambda sr: roles_summary(sr, req["full_up_to"]))
    elif op == "is_delegated":
        out = per_bit_length(req, lambda sr: [sr.is_delegated_role(n) for n in req["names"]])
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
