"""Newline-delimited JSON-RPC 2.0 over stdin/stdout (see docs/backend-protocol.md).

The real stdout is kept for the protocol only: file descriptor 1 is pointed at stderr before any user
code runs, so a `print` in a model file (or a C extension writing to fd 1) can never corrupt the stream.
Requests run one at a time on a worker thread; the main thread keeps reading stdin, so a
`$/cancelRequest` is seen while a calibration runs, and the work checks for it between batches.
"""

from __future__ import annotations

import io
import json
import os
import platform
import queue
import sys
import threading
import time
from typing import Any, BinaryIO, Callable, Dict, Optional

from .errors import Cancelled, QdqError, internal_error, is_oom, oom_error

ERROR_CODE = -32000


class Server:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._write_lock = threading.Lock()
        self._jobs: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self._cancelled: set = set()
        self._cancel_lock = threading.Lock()
        self._current: Any = None
        self.project: Any = None
        self.stopping = False

    # -- output -------------------------------------------------------------------------------
    def send(self, message: Dict[str, Any]) -> None:
        data = (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
        with self._write_lock:
            self._out.write(data)
            self._out.flush()

    def notify(self, method: str, params: Dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def _reply(self, request_id: Any, result: Any) -> None:
        try:
            self.send({"jsonrpc": "2.0", "id": request_id, "result": result})
        except ValueError as exc:  # NaN/Infinity in a result
            self._error(request_id, QdqError("internal", f"result is not valid JSON: {exc}", "report this bug"))

    def _error(self, request_id: Any, err: QdqError, code: int = ERROR_CODE) -> None:
        self.send(
            {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": err.message, "data": err.to_data()}}
        )

    # -- cancellation ---------------------------------------------------------------------------
    def cancel(self, request_id: Any) -> None:
        with self._cancel_lock:
            self._cancelled.add(request_id)

    def is_cancelled(self, request_id: Any) -> bool:
        with self._cancel_lock:
            return request_id in self._cancelled

    # -- reading -------------------------------------------------------------------------------
    def handle_line(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").strip()
        if not text:
            return
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            self.send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": f"parse error: {exc}"}})
            return
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            self.send(
                {
                    "jsonrpc": "2.0",
                    "id": message.get("id") if isinstance(message, dict) else None,
                    "error": {"code": -32600, "message": "invalid request"},
                }
            )
            return
        method = message["method"]
        if method == "$/cancelRequest":
            params = message.get("params") or {}
            if isinstance(params, dict) and "id" in params:
                self.cancel(params["id"])
            return
        if "id" not in message:
            return  # other notifications: nothing to do
        self._jobs.put(message)

    def worker(self) -> None:
        while True:
            message = self._jobs.get()
            if message is None:
                return
            request_id = message["id"]
            method = message["method"]
            params = message.get("params") or {}
            try:
                if self.is_cancelled(request_id):
                    raise Cancelled(method)
                handler = HANDLERS.get(method)
                if handler is None:
                    self.send(
                        {
                            "jsonrpc": "2.0",
                            "id": request_id,
                            "error": {"code": -32601, "message": f"method not found: {method}"},
                        }
                    )
                    continue
                if not isinstance(params, dict):
                    raise QdqError("config", f"{method}: params must be an object", "this is a client bug")
                context = Context(self, request_id)
                result = handler(self, params, context)
                self._reply(request_id, result)
            except QdqError as err:
                self._error(request_id, err)
            except BaseException as exc:  # noqa: BLE001 - every failure becomes an error object
                if is_oom(exc):
                    self._error(request_id, oom_error(exc, method))
                else:
                    self._error(request_id, internal_error(exc))
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    os._exit(1)
            finally:
                with self._cancel_lock:
                    self._cancelled.discard(request_id)
            if method == "shutdown":
                self.stopping = True
                sys.stderr.flush()
                os._exit(0)

    def serve(self, stdin: BinaryIO) -> None:
        thread = threading.Thread(target=self.worker, name="qdq-worker", daemon=True)
        thread.start()
        for line in stdin:
            self.handle_line(line)
        # stdin closed: the client went away; finish nothing, leave now
        os._exit(0)


class Context:
    """What a handler gets: progress notifications and the cancellation check for its request."""

    def __init__(self, server: Server, request_id: Any) -> None:
        self._server = server
        self.request_id = request_id
        self._last_sent = 0.0

    def progress(self, step: str, done: int, total: Optional[int], message: str) -> None:
        # At most ~20 a second, but always the first and the last of a step.
        now = time.monotonic()
        final = total is not None and done >= total
        if done != 0 and not final and now - self._last_sent < 0.05:
            return
        self._last_sent = now
        self._server.notify(
            "progress", {"requestId": self.request_id, "step": step, "done": done, "total": total, "message": message}
        )

    def check_cancel(self) -> None:
        if self._server.is_cancelled(self.request_id):
            raise Cancelled("the request")

    @property
    def cancelled(self) -> Callable[[], bool]:
        return lambda: self._server.is_cancelled(self.request_id)


# -- handlers: each takes (server, params, context) and returns the JSON result ------------------------
# torch is imported inside them, so the reader thread is already answering while torch loads.


def _initialize(server: Server, params: Dict[str, Any], ctx: Context) -> Dict[str, Any]:
    import torch  # noqa: WPS433

    try:
        import onnx  # noqa: WPS433

        onnx_version: Optional[str] = onnx.__version__
    except Exception:  # noqa: BLE001 - optional
        onnx_version = None
    import importlib.util  # noqa: WPS433
    import inspect  # noqa: WPS433

    try:
        has_dynamo_arg = "dynamo" in inspect.signature(torch.onnx.export).parameters
    except (TypeError, ValueError):
        has_dynamo_arg = False
    return {
        "dynamo_exporter": bool(has_dynamo_arg and importlib.util.find_spec("onnxscript") is not None),
        "python": sys.executable,
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "onnx_version": onnx_version,
        "platform": f"{platform.system()}-{platform.machine()}",
    }


def _require_project(server: Server, method: str) -> Any:
    if server.project is None:
        raise QdqError("config", f"{method} before load", "send load first (this is a client bug)")
    return server.project


def _load(server: Server, params: Dict[str, Any], ctx: Context) -> Dict[str, Any]:
    from . import loader  # noqa: WPS433

    server.project = None
    project = loader.load(params, ctx.progress, ctx.check_cancel)
    server.project = project
    return loader.loaded_result(project)


def _calibrate(server: Server, params: Dict[str, Any], ctx: Context) -> Dict[str, Any]:
    from . import calibrate  # noqa: WPS433

    return calibrate.calibrate(_require_project(server, "calibrate"), params, ctx.progress, ctx.check_cancel)


def _set_method(server: Server, params: Dict[str, Any], ctx: Context) -> Dict[str, Any]:
    from . import calibrate  # noqa: WPS433

    return calibrate.set_method(_require_project(server, "set_method"), params, ctx.progress, ctx.check_cancel)


def _export(server: Server, params: Dict[str, Any], ctx: Context) -> Dict[str, Any]:
    from . import export  # noqa: WPS433

    return export.export(_require_project(server, "export"), params, ctx.progress, ctx.check_cancel)


def _restore_modules(server: Server, params: Dict[str, Any], ctx: Context) -> Dict[str, Any]:
    try:
        from . import patching  # noqa: WPS433
    except ImportError:
        return {"restored": []}
    return {"restored": patching.restore()}


def _module_source(server: Server, params: Dict[str, Any], ctx: Context) -> Dict[str, Any]:
    from . import patching  # noqa: WPS433

    name = params.get("module")
    if not isinstance(name, str) or not name:
        raise QdqError("config", "module_source needs {module: str}", "this is a client bug")
    return patching.module_source(name)


def _sensitivity(server: Server, params: Dict[str, Any], ctx: Context) -> Dict[str, Any]:
    from . import sensitivity_rpc  # noqa: WPS433

    return sensitivity_rpc.sensitivity(_require_project(server, "sensitivity"), params, ctx.progress, ctx.check_cancel)


def _tune(server: Server, params: Dict[str, Any], ctx: Context) -> Dict[str, Any]:
    from . import sensitivity_rpc  # noqa: WPS433

    return sensitivity_rpc.tune(_require_project(server, "tune"), params, ctx.progress, ctx.check_cancel)


def _shutdown(server: Server, params: Dict[str, Any], ctx: Context) -> None:
    return None


HANDLERS: Dict[str, Callable[[Server, Dict[str, Any], Context], Any]] = {
    "initialize": _initialize,
    "load": _load,
    "calibrate": _calibrate,
    "set_method": _set_method,
    "export": _export,
    "restore_modules": _restore_modules,
    "module_source": _module_source,
    "sensitivity": _sensitivity,
    "tune": _tune,
    "shutdown": _shutdown,
}


def main() -> None:
    # Keep fd 1 for the protocol, then point fd 1 (and sys.stdout) at stderr for everything else.
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out = io.FileIO(protocol_fd, "w", closefd=True)
    stdin = sys.stdin.buffer
    server = Server(out)  # type: ignore[arg-type]
    sys.stderr.write(f"qdq backend on {sys.executable} (Python {platform.python_version()})\n")
    sys.stderr.flush()
    server.serve(stdin)
