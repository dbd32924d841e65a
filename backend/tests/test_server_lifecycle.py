"""The backend process's life and its typed boundary (issues 13, 14 D5/D7), over a real pipe.

- Ctrl-C in a terminal sends SIGINT to the whole foreground group, the backend included: the running request
  ends as a clean `cancelled` error and the backend keeps serving (before: a KeyboardInterrupt traceback).
- shutdown takes along what the model started, also a child in a session of its own.
- a malformed request is a `protocol` error naming the field; protocol_types.py is generated from the schema.
"""

import hashlib
import os
import signal
import sys
import time

import pytest

pytest.importorskip("torch")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
from qdq_backend import protocol, protocol_types  # noqa: E402
from rpc_client import Backend, make_project  # noqa: E402

LINUX = sys.platform.startswith("linux")


def _sleepers(seconds):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if handle.read() == b"sleep\0" + seconds.encode() + b"\0":
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture()
def spawner(tmp_path, monkeypatch):
    seconds = f"{700 + os.getpid() % 100}.{int(time.time() * 1000) % 100000}"
    monkeypatch.setenv("QDQ_TEST_SLEEP", seconds)
    project = make_project(tmp_path, "spawner")
    backend = Backend(project)
    yield backend, project, seconds
    backend.close()
    for pid in _sleepers(seconds):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not LINUX, reason="finds the children through /proc")
def test_shutdown_takes_along_the_models_children(spawner):
    backend, project, seconds = spawner
    backend.call("load", {"project_dir": project, "model": "model.py:build", "input_shapes": [[2, 4]]})
    assert len(_sleepers(seconds)) == 2
    backend.close()
    deadline = time.monotonic() + 5
    while _sleepers(seconds) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sleepers(seconds) == []


@pytest.mark.skipif(not LINUX, reason="signals")
def test_sigint_cancels_the_running_request_without_a_traceback(spawner):
    backend, project, _seconds = spawner
    backend.call(
        "load", {"project_dir": project, "model": "model.py:build", "calibration_data": "model.py:slow_batches"}
    )
    request = backend.start("calibrate", {"method": "max", "batches": 100000, "out_dir": os.path.join(project, "o")})
    sent = []

    def on_progress(message):
        params = message["params"]
        if not sent and params["step"] == "calibrate" and params["done"] >= 2:
            sent.append(True)
            os.kill(backend.proc.pid, signal.SIGINT)

    reply = backend.wait(request, on_progress)
    assert reply["error"]["data"]["kind"] == "cancelled", reply
    assert backend.call("initialize")["torch_version"]  # still serving
    log = "".join(backend.stderr_lines)
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log


def test_malformed_params_are_a_protocol_error_naming_the_field(tmp_path):
    project = make_project(tmp_path, "spawner")
    backend = Backend(project)
    try:
        error = backend.error("load", {"project_dir": project, "model_source_override": {"file": "model.py"}})
        assert error["data"]["kind"] == "protocol"
        assert "params.model_source_override.source: missing" in error["data"]["message"]
        error = backend.error("calibrate", {"out_dir": project, "batches": "8"})
        assert "params.batches: expected integer, got string" in error["data"]["message"]
        error = backend.error("initialize", [1, 2])
        assert error["data"]["kind"] == "protocol"
        assert backend.call("initialize")["torch_version"]
    finally:
        backend.close()


def test_protocol_types_are_generated_from_the_current_schema():
    # Regenerate: npx tsc -p . && node out/server/src/pipeline/backendProtocolGen.js (test/pipeline checks the text)
    with open(protocol.SCHEMA_PATH, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == protocol_types.SCHEMA_SHA256
    definitions = protocol.schema()["definitions"]
    assert protocol_types.ERROR_KINDS == tuple(definitions["ErrorKind"]["enum"])
    assert protocol_types.CALIBRATION_METHODS == tuple(definitions["CalibrationMethod"]["enum"])
    assert set(protocol_types.METHODS) == set(protocol.schema()["x-methods"])
