"""Writes repository settings into Redis the way the reference worker does: dynaconf's Redis
loader `write`, which encodes each value (@int, @bool, @json, @none, raw strings).

argv: DB   (the hash written is DYNACONF_MAIN in that Redis database on 127.0.0.1:6379)
stdin: JSON object {KEY: value}
"""
import json
import sys

from dynaconf import Dynaconf
from dynaconf.loaders import redis_loader

db = int(sys.argv[1])
settings = Dynaconf(
    redis_enabled=True,
    redis={"host": "127.0.0.1", "port": 6379, "db": db, "decode_responses": True},
)
redis_loader.write(settings, json.load(sys.stdin))
