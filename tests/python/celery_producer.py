"""The RSTUF API's side of Celery: sends tasks and reads their results with the PyPI celery
stack, configured like the API (broker_url, result_backend, result_persistent,
task_acks_late), so the Rust worker is tested against the real producer.

stdin: one JSON request per line, stdout: one JSON answer per line.
  {"op": "send", "broker": url, "backend": url, "queue": q, "task_id": id,
   "action": str, "payload": obj|null}                       -> {"sent": id}
  {"op": "send_raw", ... "task": name, "kwargs": {...}}       -> {"sent": id}
  {"op": "result", "broker": url, "backend": url, "task_id": id}
      -> {"state": str, "result": obj|null, "exception": str|null, "message": str|null,
          "api_state": str, "api_result": obj|null}
     (api_* are what the RSTUF API's GET /api/v1/task makes of it: an exception becomes
      {"message": str(exc)}, SUCCESS without a true "status" becomes ERRORED)
"""
import json
import sys

from celery import Celery

_apps = {}


def app(broker, backend):
    key = (broker, backend)
    if key not in _apps:
        a = Celery("rstuf-api", broker=broker, backend=backend)
        a.conf.update(result_persistent=True, task_acks_late=True,
                      broker_connection_retry_on_startup=True)
        _apps[key] = a
    return _apps[key]


def answer(req):
    a = app(req["broker"], req["backend"])
    if req["op"] in ("send", "send_raw"):
        task = req.get("task", "app.repository_service_tuf_worker")
        payload = json.loads(req["payload_json"]) if "payload_json" in req else req.get("payload")
        kwargs = req["kwargs"] if "kwargs" in req else {"action": req["action"], "payload": payload}
        a.send_task(task, kwargs=kwargs, task_id=req["task_id"], queue=req["queue"],
                    acks_late=True, countdown=req.get("countdown"))
        return {"sent": req["task_id"]}
    if req["op"] == "result":
        r = a.AsyncResult(req["task_id"])
        state, result = r.state, r.result
        api_state, api_result = state, result
        if isinstance(result, Exception):
            api_result = {"message": str(result)}
        if api_state == "SUCCESS":
            if not isinstance(api_result, dict):
                api_state = "HTTP 500"  # the API calls .get() on it
            elif not api_result.get("status", False):
                api_state = "ERRORED"
        api_result = json.loads(json.dumps(api_result, default=str))
        if isinstance(result, Exception):
            return {"state": state, "result": None, "exception": type(result).__name__,
                    "message": str(result), "api_state": api_state, "api_result": api_result}
        return {"state": state, "result": json.loads(json.dumps(result, default=str)),
                "exception": None, "message": None, "api_state": api_state,
                "api_result": api_result}
    raise ValueError(req["op"])


if __name__ == "__main__":
    for line in sys.stdin:
        if line.strip():
            try:
                out = answer(json.loads(line))
            except Exception as e:  # the Rust test asserts on it
                out = {"error": f"{type(e).__name__}: {e}"}
            print(json.dumps(out), flush=True)
