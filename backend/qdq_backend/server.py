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
import signal
import sys
import threading
import time
from typing import Any, BinaryIO, Callable, Dict, List, Optional

from .errors import Cancelled, QdqError, internal_error, is_oom, oom_error
from .protocol_types import (
    METHODS,
    CalibrateParams,
    CalibrateResult,
    ExportParams,
    ExportResult,
    InitializeParams,
    InitializeResult,
    LoadParams,
    LoadResult,
    ModuleSourceParams,
    ModuleSourceResult,
    QatParams,
    QatResult,
    RestoreModulesParams,
    RestoreModulesResult,
    SensitivityParams,
    SensitivityResult,
    SetMethodParams,
    ShutdownParams,
    TuneParams,
    TuneResult,
)

ERROR_CODE = -32000


class Server:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._write_lock = threading.Lock()
        self._jobs: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self._cancelled: set = set()
        self._cancel_lock = threading.Lock()
        self._current: Any = None  # id of the request the worker runs, None when idle
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

    def cancel_current(self) -> None:
        """SIGINT (Ctrl-C reaching this process): the running request ends as `cancelled`, never a traceback."""
        with self._cancel_lock:
            if self._current is not None:
                self._cancelled.add(self._current)

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
            with self._cancel_lock:
                self._current = request_id
            try:
                self._run(request_id, method, params)
            except BaseException as exc:  # noqa: BLE001 - every failure becomes an error object
                if isinstance(exc, QdqError):
                    self._error(request_id, exc)
                elif isinstance(exc, KeyboardInterrupt):
                    self._error(request_id, Cancelled(method))
                elif is_oom(exc):
                    self._error(request_id, oom_error(exc, method))
                else:
                    self._error(request_id, internal_error(exc))
                if isinstance(exc, SystemExit):
                    os._exit(1)
            finally:
                with self._cancel_lock:
                    self._cancelled.discard(request_id)
                    self._current = None
            if method == "shutdown":
                self.stopping = True
                leave(0)

    def _run(self, request_id: Any, method: str, params: Any) -> None:
        """Typed params in (a malformed message is a `protocol` error naming the field), the handler's result out."""
        if self.is_cancelled(request_id):
            raise Cancelled(method)
        handler = HANDLERS.get(method)
        if handler is None or method not in METHODS:
            error = {"code": -32601, "message": f"method not found: {method}"}
            self.send({"jsonrpc": "2.0", "id": request_id, "error": error})
            return
        params_class, _result_name = METHODS[method]
        typed = params_class.from_json(params if params is not None else {}, "params")
        self._reply(request_id, handler(self, typed, Context(self, request_id)))

    def serve(self, stdin: BinaryIO) -> None:
        thread = threading.Thread(target=self.worker, name="qdq-worker", daemon=True)
        thread.start()
        for line in stdin:
            self.handle_line(line)
        # stdin closed: the client went away; finish nothing, leave now
        leave(0)


def _descendants(pid: int) -> List[int]:
    """Processes started below `pid` (Linux /proc; elsewhere none are found), in any process group or session."""
    children: Dict[int, List[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode("utf-8", "replace")
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: List[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def leave(code: int) -> None:
    """Exit now, taking along what user code started: a child in its own session escapes the client's group kill."""
    for pid in _descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    sys.stderr.flush()
    os._exit(code)


class Context:
    """What a handler gets: progress notifications and the cancellation check for its request."""

    def __init__(self, server: Server, request_id: Any) -> None:
        self._server = server
        self.request_id = request_id
        self._last_sent = 0.0
        self._last_step = ""

    def progress(self, step: str, done: int, total: Optional[int], message: str) -> None:
        # At most ~20 a second, but always the first and the last of a step and the first after a change of step.
        now = time.monotonic()
        final = total is not None and done >= total
        if done != 0 and not final and step == self._last_step and now - self._last_sent < 0.05:
            return
        self._last_sent, self._last_step = now, step
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


def _initialize(server: Server, params: InitializeParams, ctx: Context) -> InitializeResult:
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


def _load(server: Server, params: LoadParams, ctx: Context) -> LoadResult:
    from . import loader  # noqa: WPS433

    server.project = None
    project = loader.load(params, ctx.progress, ctx.check_cancel)
    server.project = project
    return loader.loaded_result(project)


def _calibrate(server: Server, params: CalibrateParams, ctx: Context) -> CalibrateResult:
    from . import calibrate  # noqa: WPS433

    return calibrate.calibrate(_require_project(server, "calibrate"), params, ctx.progress, ctx.check_cancel)


def _set_method(server: Server, params: SetMethodParams, ctx: Context) -> CalibrateResult:
    from . import calibrate  # noqa: WPS433

    return calibrate.set_method(_require_project(server, "set_method"), params, ctx.progress, ctx.check_cancel)


def _export(server: Server, params: ExportParams, ctx: Context) -> ExportResult:
    from . import export  # noqa: WPS433

    return export.export(_require_project(server, "export"), params, ctx.progress, ctx.check_cancel)


def _qat(server: Server, params: QatParams, ctx: Context) -> QatResult:
    from . import qat_run  # noqa: WPS433

    return qat_run.run_qat(_require_project(server, "qat"), params, ctx.progress, ctx.cancelled)


def _restore_modules(server: Server, params: RestoreModulesParams, ctx: Context) -> RestoreModulesResult:
    try:
        from . import patching  # noqa: WPS433
    except ImportError:
        return {"restored": []}
    return {"restored": patching.restore()}


def _module_source(server: Server, params: ModuleSourceParams, ctx: Context) -> ModuleSourceResult:
    from . import patching  # noqa: WPS433

    if not params.module:
        raise QdqError("config", "module_source needs {module: str}", "this is a client bug")
    source = patching.module_source(params.module)
    return {"module": source["module"], "file": source["file"], "source": source["source"]}


def _sensitivity(server: Server, params: SensitivityParams, ctx: Context) -> SensitivityResult:
    from . import sensitivity_rpc  # noqa: WPS433

    return sensitivity_rpc.sensitivity(_require_project(server, "sensitivity"), params, ctx.progress, ctx.check_cancel)


def _tune(server: Server, params: TuneParams, ctx: Context) -> TuneResult:
    from . import sensitivity_rpc  # noqa: WPS433

    return sensitivity_rpc.tune(_require_project(server, "tune"), params, ctx.progress, ctx.check_cancel)


def _shutdown(server: Server, params: ShutdownParams, ctx: Context) -> None:
    return None


# Each handler takes (server, its typed params, context) and returns its result; the schema's x-methods names both.

HANDLERS: Dict[str, Callable[[Server, Any, Context], Any]] = {
    "initialize": _initialize,
    "load": _load,
    "calibrate": _calibrate,
    "set_method": _set_method,
    "export": _export,
    "qat": _qat,
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
    server = Server(out)
    # Ctrl-C in a terminal reaches the whole foreground group: cancel the running request instead of a traceback.
    signal.signal(signal.SIGINT, lambda _sig, _frame: server.cancel_current())
    signal.signal(signal.SIGTERM, lambda _sig, _frame: leave(143))
    sys.stderr.write(f"qdq backend on {sys.executable} (Python {platform.python_version()})\n")
    sys.stderr.flush()
    server.serve(stdin)
