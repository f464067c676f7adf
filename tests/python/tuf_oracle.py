"""python-tuf's verdict on repositories written by the Rust code.

argv: directories, each holding 1.root.json, timestamp.json, 1.snapshot.json, 1.targets.json
and 1.bins-<x>.json files, plus optionally a file `artifact.json` {"path", "length", "sha256"}
naming one artifact published in a bin (`artifact_ok` is null without it).
stdout: JSON list, one entry per directory:
  {"loaded": [...file names...], "delegate_ok": bool, "refresh_ok": bool, "artifact_ok": bool,
   "error": str|null}
"""
import json
import os
import sys
import tempfile

from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.ngclient import Updater

from client_oracle import DirFetcher


def check(d):
    res = {"loaded": [], "delegate_ok": False, "refresh_ok": False, "artifact_ok": False, "error": None}
    try:
        def load(name, cls):
            with open(os.path.join(d, name), "rb") as f:
                md = Metadata[cls].from_bytes(f.read())
            assert isinstance(md.signed, cls), name
            res["loaded"].append(name)
            return md

        root = load("1.root.json", Root)
        ts = load("timestamp.json", Timestamp)
        snap = load("1.snapshot.json", Snapshot)
        targets = load("1.targets.json", Targets)
        root.verify_delegate(Root.type, root)
        root.verify_delegate(Timestamp.type, ts)
        root.verify_delegate(Snapshot.type, snap)
        root.verify_delegate(Targets.type, targets)
        for name in sorted(os.listdir(d)):
            if ".bins-" in name:
                role = name.split(".", 1)[1][: -len(".json")]
                targets.verify_delegate(role, load(name, Targets))
        res["delegate_ok"] = True

        with tempfile.TemporaryDirectory() as client_dir:
            with open(os.path.join(d, "1.root.json"), "rb") as f:
                trusted_root = f.read()
            updater = Updater(
                client_dir,
                "https://example.invalid/metadata/",
                fetcher=DirFetcher(d),
                bootstrap=trusted_root,
            )
            updater.refresh()
            res["refresh_ok"] = True
            artifact = os.path.join(d, "artifact.json")
            if os.path.exists(artifact):
                want = json.load(open(artifact))
                info = updater.get_targetinfo(want["path"])
                res["artifact_ok"] = (
                    info is not None
                    and info.length == want["length"]
                    and info.hashes.get("sha256") == want["sha256"]
                )
            else:
                res["artifact_ok"] = None
    except Exception as e:  # report, never crash: the Rust test asserts on it
        res["error"] = f"{type(e).__name__}: {e}"
    return res


json.dump([check(d) for d in sys.argv[1:]], sys.stdout)
