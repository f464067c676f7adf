"""dynaconf's encoding of repository settings (the Redis loader's parse/unparse).

stdin: {"decode": [raw strings], "encode": [JSON values]}
stdout: {"decode": [{"ok": value} | {"error": str}], "encode": [str]}
"""
import json
import sys

from dynaconf.utils.parse_conf import parse_conf_data, unparse_conf_data

req = json.load(sys.stdin)
out = {"decode": [], "encode": []}
for raw in req["decode"]:
    try:
        value = parse_conf_data(raw, tomlfy=True, box_settings={})
        out["decode"].append({"ok": json.loads(json.dumps(value))})
    except Exception as e:  # noqa: BLE001 - reported to the Rust side
        out["decode"].append({"error": f"{type(e).__name__}: {e}"})
for value in req["encode"]:
    out["encode"].append(unparse_conf_data(value))
json.dump(out, sys.stdout)
