"""Error objects the backend answers with: every failure becomes {kind, message, hint, detail?}.

`message` names the problem, `hint` names the fix, `detail` holds the user's own traceback frames (never
the backend's or torch's), so the editor can show something a user can act on.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Iterable, List, Optional

from .protocol_types import ERROR_KINDS, ErrorData

# one home: protocol.schema.json (ErrorKind)
KINDS = ERROR_KINDS

_BACKEND_DIR = os.path.dirname(os.path.abspath(__file__))


class QdqError(Exception):
    """A failure the client can explain to the user; `kind` is one of KINDS."""

    def __init__(self, kind: str, message: str, hint: str, detail: Optional[str] = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint
        self.detail = detail

    def to_data(self) -> ErrorData:
        data: ErrorData = {"kind": self.kind, "message": self.message, "hint": self.hint}
        if self.detail:
            data["detail"] = self.detail
        return data


class Cancelled(QdqError):
    def __init__(self, what: str = "the request") -> None:
        super().__init__("cancelled", f"{what} was cancelled", "run it again when ready")


def _library_dirs() -> List[str]:
    dirs = [_BACKEND_DIR]
    try:
        import torch  # noqa: WPS433

        dirs.append(os.path.dirname(os.path.abspath(torch.__file__)))
    except Exception:  # pragma: no cover - torch is required elsewhere
        pass
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            import sysconfig

            dirs.append(os.path.abspath(sysconfig.get_paths()[name]))
        except Exception:  # pragma: no cover
            pass
    dirs.append(os.path.dirname(os.path.abspath(traceback.__file__)))
    return dirs


def is_library_path(path: str) -> bool:
    """Installed code: site-packages / dist-packages, or the interpreter's own tree (a venv inside the project too)."""
    parts = os.path.abspath(path).split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    full = os.path.abspath(path)
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        for lib in ("lib", "lib64"):
            # the standard library (a conda env inside the project has it there); not all of the prefix,
            # as projects often live under it (/usr/src/app in containers)
            root = os.path.join(os.path.abspath(prefix), lib) + os.sep
            if full.startswith(root):
                return True
    return False


def _is_user_frame(filename: str, user_roots: Iterable[str], library_dirs: List[str]) -> bool:
    if filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    if is_library_path(path) or path.startswith(_BACKEND_DIR + os.sep):
        return False
    roots = [os.path.abspath(r) for r in user_roots if r]
    if any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        # the project's own qdq_quant.py helper is ours, not the user's
        return os.path.basename(path) != "qdq_quant.py"
    if roots:
        return False
    return not any(path.startswith(d.rstrip(os.sep) + os.sep) for d in library_dirs)


def user_traceback(exc: BaseException, user_roots: Iterable[str] = ()) -> str:
    """The traceback of `exc` keeping only frames in the user's files (all frames if none match)."""
    roots = list(user_roots)
    library_dirs = _library_dirs()
    frames = traceback.extract_tb(exc.__traceback__)
    kept = [f for f in frames if _is_user_frame(f.filename, roots, library_dirs)]
    lines = ["Traceback (user frames only):\n"] if kept else []
    lines += traceback.format_list(kept)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()


def last_user_frame(exc: BaseException, user_roots: Iterable[str] = ()) -> Optional[str]:
    """`file.py:LINE in func` of the deepest user frame, for messages."""
    roots = list(user_roots)
    library_dirs = _library_dirs()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_user_frame(f.filename, roots, library_dirs)]
    if not frames:
        return None
    f = frames[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}"


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 300:
        first = first[:300] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    if name in ("OutOfMemoryError",):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text
    )


_SHAPE_WORDS = (
    "shape",
    "size mismatch",
    "sizes of tensors",
    "mat1 and mat2",
    "must match the size",
    "expected input",
    "to have",
    "channels",
    "dimension",
    "expected 4d",
    "expected 3d",
    "expected 2d",
    "input type",
    "cannot be multiplied",
    "invalid for input of size",
    "got input",
    "non-empty",
    "positional argument",
)


def looks_like_shape_error(exc: BaseException) -> bool:
    if not isinstance(exc, (RuntimeError, ValueError, TypeError, IndexError)):
        return False
    text = str(exc).lower()
    return any(word in text for word in _SHAPE_WORDS)


def oom_error(exc: BaseException, during: str) -> QdqError:
    return QdqError(
        "oom",
        f"out of memory during {during}: {describe(exc)}",
        "use smaller calibration batches (calibration-data / input-shapes) or fewer batches, or free memory",
    )


def internal_error(exc: BaseException) -> QdqError:
    return QdqError(
        "internal",
        f"internal error in the qdq backend: {describe(exc)}",
        "this is a bug in qdq; please report it with the detail below",
        detail="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip(),
    )


def python_description() -> str:
    return f"{sys.executable} (Python {sys.version.split()[0]})"
