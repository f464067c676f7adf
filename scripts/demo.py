"""Talks to a running worker the way the RSTUF API does, with the PyPI celery client:

    .venv/bin/python scripts/demo.py bootstrap        # the fixture payload, with our online key
    .venv/bin/python scripts/demo.py add PATH LENGTH SHA256
    .venv/bin/python scripts/demo.py remove PATH
    .venv/bin/python scripts/demo.py publish

Each sends one task (as the API: `app.repository_service_tuf_worker` with kwargs
{action, payload}), waits for its result and prints the state and result the API would show.
Uses the same RSTUF_* variables and defaults as scripts/worker.sh.
"""
import datetime
import json
import os
import pathlib
import sys
import uuid

import redis
from celery import Celery
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures"
ONLINE_KEY_DIR = pathlib.Path(os.environ.get("RSTUF_ONLINE_KEY_DIR")
                              or HERE.parent / "target" / "rstuf-demo" / "online-key")
ROOT_KEYS = {  # the fixture root keys (RSTUF CLI test keys, password hunter2)
    "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc": "JH.ed25519",
    "50d7e110ad65f3b2dba5c3cfc8c5ca259be9774cc26be3410044ffd4be3aa5f3": "JJ.ecdsa",
    "2f685fa7546f1856b123223ab086b3def14c89d24eef18f49c32508c2f60e241": "JC.rsa",
}

broker = os.environ.get("RSTUF_BROKER_SERVER", "redis://127.0.0.1:6379/0")
server = os.environ.get("RSTUF_REDIS_SERVER", "redis://127.0.0.1")
port = os.environ.get("RSTUF_REDIS_SERVER_PORT", "6379")
backend = f"{server}:{port}/{os.environ.get('RSTUF_REDIS_SERVER_DB_RESULT', '0')}"
settings_db = int(os.environ.get("RSTUF_REDIS_SERVER_DB_REPO_SETTINGS", "1"))
app = Celery("demo", broker=broker, backend=backend)
app.conf.update(result_persistent=True, task_acks_late=True)


def online_key():
    """The public half of the key scripts/worker.sh created (or found) in the online-key
    directory: a file named by its key id, as `fn:<keyid>` URIs find it."""
    names = sorted(p.name for p in ONLINE_KEY_DIR.glob("*")
                   if len(p.name) == 64 and all(c in "0123456789abcdef" for c in p.name))
    if not names:
        sys.exit(f"no online key in {ONLINE_KEY_DIR}: start scripts/worker.sh first")
    pem = (ONLINE_KEY_DIR / names[0]).read_bytes()
    key = CryptoSigner(load_pem_private_key(pem, password=None)).public_key
    key.unrecognized_fields.update({"x-rstuf-key-name": "Online Key",
                                    "x-rstuf-online-key-uri": f"fn:{key.keyid}"})
    return key


def fresh_bootstrap_payload():
    """The fixture payload with the worker's online key in place of the fixture's, its root
    re-signed by the fixture root keys to expire in a year (as the CLI's ceremony would)."""
    payload = json.loads((FIXTURES / "api-payloads/bootstrap/payload_bins.json").read_text())
    root = Metadata.from_dict(payload["metadata"]["root"])
    online = online_key()
    for role in ("targets", "snapshot", "timestamp"):
        for keyid in list(root.signed.roles[role].keyids):
            root.signed.revoke_key(keyid, role)
        root.signed.add_key(online, role)
    root.signed.expires = (datetime.datetime.now(datetime.timezone.utc)
                           + datetime.timedelta(days=365)).replace(microsecond=0)
    signers = list(root.signatures)
    root.signatures.clear()
    for keyid in signers:
        pem = (FIXTURES / "keys" / ROOT_KEYS[keyid]).read_bytes()
        private = load_pem_private_key(pem, password=b"hunter2")
        root.sign(CryptoSigner(private, root.signed.keys[keyid]), append=True)
    payload["metadata"]["root"] = root.to_dict()
    return payload


def send(action, payload, queue="metadata_repository"):
    task_id = uuid.uuid4().hex
    if action == "bootstrap":  # the API takes the bootstrap lock first
        host = server.split("redis://")[1]
        redis.Redis(host=host, port=int(port), db=settings_db).hset(
            "DYNACONF_MAIN", "BOOTSTRAP", f"pre-{task_id}")
    result = app.send_task("app.repository_service_tuf_worker",
                           kwargs={"action": action, "payload": payload},
                           task_id=task_id, queue=queue)
    value = result.get(timeout=120, propagate=False)
    state = result.state
    if state == "SUCCESS" and not (value or {}).get("status", False):
        state = "ERRORED"
    print(json.dumps({"task_id": task_id, "state": state, "result": value},
                     indent=2, default=str))


def main(argv):
    match argv:
        case ["bootstrap"]:
            send("bootstrap", fresh_bootstrap_payload())
        case ["add", path, length, sha256]:
            send("add_artifacts", {"artifacts": [{"path": path, "info": {
                "length": int(length), "hashes": {"sha256": sha256}}}]})
        case ["remove", path]:
            send("remove_artifacts", {"artifacts": [path]})
        case ["publish"]:
            send("publish_artifacts", None, queue="rstuf_internals")
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
