"""python-tuf's ngclient as a long-lived oracle: one JSON request per stdin line, one JSON
answer per stdout line, until EOF.

Request:
  {"repo": dir of the published metadata (the storage directory),
   "client": dir holding the client's trusted metadata (kept between requests),
   "fresh": true to start from the repository's 1.root.json (the client dir is emptied),
            false to continue from the state the client dir holds,
   "time": RFC 3339 reference time for expiry checks, or null for the real clock,
   "present": {path: {"length": int, "hashes": {alg: hex}}} artifacts that must be found,
   "absent": [paths that must not be found]}
Answer:
  {"ok": bool, "error": str|null, "wrong": [paths of present artifacts missing or different],
   "found": [absent paths the client found], "versions": {role: version trusted}}
"""
import datetime
import json
import os
import shutil
import sys
import types

import tuf.ngclient._internal.trusted_metadata_set as trusted_set
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import FetcherInterface, Updater


_CLOCK = {"at": None}


class _FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        at = _CLOCK["at"]
        return at if at is not None else datetime.datetime.now(tz)


# Stands in for the `datetime` module inside the trusted metadata set, whose only use of it is
# `datetime.datetime.now(datetime.timezone.utc)` as the reference time for expiry checks.
_Clock = types.SimpleNamespace(
    datetime=_FixedDatetime, timezone=datetime.timezone, timedelta=datetime.timedelta
)
trusted_set.datetime = _Clock


class DirFetcher(FetcherInterface):
    def __init__(self, base):
        self.base = base

    def _fetch(self, url):
        name = url.rsplit("/", 1)[1]
        path = os.path.join(self.base, name)
        if not os.path.exists(path):
            raise DownloadHTTPError(f"{name} not found", 404)
        with open(path, "rb") as f:
            return iter([f.read()])


def answer(req):
    res = {"ok": False, "error": None, "wrong": [], "found": [], "versions": {}}
    try:
        t = req.get("time")
        _CLOCK["at"] = None if t is None else datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
        client = req["client"]
        bootstrap = None
        if req.get("fresh"):
            shutil.rmtree(client, ignore_errors=True)
            with open(os.path.join(req["repo"], "1.root.json"), "rb") as f:
                bootstrap = f.read()
        os.makedirs(client, exist_ok=True)
        updater = Updater(
            client,
            "https://example.invalid/metadata/",
            target_dir=os.path.join(client, "targets"),
            fetcher=DirFetcher(req["repo"]),
            bootstrap=bootstrap,
        )
        updater.refresh()
        for path, want in sorted(req.get("present", {}).items()):
            info = updater.get_targetinfo(path)
            if info is None or info.length != want["length"] or info.hashes != want["hashes"]:
                res["wrong"].append(path)
        for path in req.get("absent", []):
            if updater.get_targetinfo(path) is not None:
                res["found"].append(path)
        trusted = updater._trusted_set  # noqa: SLF001 - the versions the client now trusts
        for role in ("root", "timestamp", "snapshot", "targets"):
            res["versions"][role] = trusted[role].version
        res["ok"] = not res["wrong"] and not res["found"]
    except Exception as e:  # report, never crash: the Rust test asserts on it
        res["error"] = f"{type(e).__name__}: {e}"
    return res


if __name__ == "__main__":
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(answer(json.loads(line))), flush=True)
