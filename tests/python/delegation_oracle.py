"""python-tuf's answers for TAP 15 hash bins and delegated path patterns.

Reads a JSON request on stdin:
  {"bins": {"bit_lengths": [...], "paths": [...], "names": [...]},
   "patterns": [[pattern, target], ...], "prefixes": [[[prefix...], target], ...],
   "log2": [n, ...]}
Writes the answers as JSON on stdout.
"""
import hashlib
import json
import math
import sys

from tuf.api.metadata import DelegatedRole, SuccinctRoles

req = json.load(sys.stdin)
out = {"bins": {}, "patterns": [], "prefixes": [], "log2": []}
for bit_length in req["bins"]["bit_lengths"]:
    sr = SuccinctRoles(keyids=[], threshold=1, bit_length=bit_length, name_prefix="bins")
    roles = list(sr.get_roles())
    out["bins"][str(bit_length)] = {
        "for_target": [sr.get_role_for_target(p) for p in req["bins"]["paths"]],
        "count": len(roles),
        "first": roles[0],
        "last": roles[-1],
        "all_sha256": hashlib.sha256("\n".join(roles).encode()).hexdigest(),
        "is_delegated": [sr.is_delegated_role(n) for n in req["bins"]["names"]],
    }
for pattern, target in req["patterns"]:
    role = DelegatedRole(name="r", keyids=[], threshold=1, terminating=True, paths=[pattern])
    out["patterns"].append(role.is_delegated_path(target))
for prefixes, target in req["prefixes"]:
    role = DelegatedRole(name="r", keyids=[], threshold=1, terminating=True, path_hash_prefixes=prefixes)
    out["prefixes"].append(role.is_delegated_path(target))
out["log2"] = [int(math.log(n, 2)) for n in req["log2"]]
json.dump(out, sys.stdout)
