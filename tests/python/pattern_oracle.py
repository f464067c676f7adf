"""python-tuf's answers for delegated path matching (DelegatedRole.is_delegated_path), and
Python's fnmatch.fnmatch for bare names.

Reads one JSON request on stdin and writes a JSON list of booleans on stdout:
  {"op": "paths", "cases": [[[pattern...], target]...]}
      -> DelegatedRole(paths=[pattern...]).is_delegated_path(target) per case
  {"op": "prefixes", "cases": [[[prefix...], target]...]}
      -> DelegatedRole(path_hash_prefixes=[prefix...]).is_delegated_path(target) per case
  {"op": "fnmatch", "cases": [[name, pattern]...]} -> fnmatch.fnmatch(name, pattern) per case
"""
import fnmatch
import json
import sys
import warnings

from tuf.api.metadata import DelegatedRole

# fnmatch.translate can emit classes like "[[" that make re warn about nested sets.
warnings.simplefilter("ignore")


def role(**kwargs):
    return DelegatedRole(name="r", keyids=[], threshold=1, terminating=True, **kwargs)


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    if op == "paths":
        out = [role(paths=ps).is_delegated_path(t) for ps, t in req["cases"]]
    elif op == "prefixes":
        out = [role(path_hash_prefixes=ps).is_delegated_path(t) for ps, t in req["cases"]]
    elif op == "fnmatch":
        out = [fnmatch.fnmatch(name, pat) for name, pat in req["cases"]]
    else:
        raise SystemExit(f"unknown op {op!r}")
    json.dump(out, sys.stdout)


main()
