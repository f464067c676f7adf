"""Reads repository settings from Redis the way the RSTUF API does (dynaconf's Redis loader).

argv: PREFIX DB KEY...   (the hash read is <PREFIX>_MAIN)
stdout: JSON object {KEY: value} (missing keys are null)
"""
import json
import sys

from dynaconf import Dynaconf

prefix, db, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
settings = Dynaconf(
    envvar_prefix=prefix,
    redis_enabled=True,
    redis={"host": "127.0.0.1", "port": 6379, "db": db, "decode_responses": True},
)
json.dump({k: settings.get(k) for k in keys}, sys.stdout, default=str)
