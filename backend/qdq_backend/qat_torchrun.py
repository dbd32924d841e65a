"""`python -m qdq_backend.qat_torchrun ARGS` is `python -m torch.distributed.run ARGS` (torchrun), made to
work on torch 1.13 under Python 3.11+.

torch 1.13's `Std.from_str("0")` looks the value up by iterating the IntFlag, and Python 3.11 no longer
yields a zero-valued member there: it returns None and torchrun fails in `to_map` before starting any
worker, whatever the flags. Where that bug shows, 0 maps to Std.NONE; elsewhere nothing changes.
"""

from __future__ import annotations

import sys
from typing import Any


def _patch_std() -> None:
    from torch.distributed.elastic.multiprocessing import api  # noqa: WPS433

    original = api.Std.from_str
    if original("0") is not None:
        return

    def from_str(vm: str) -> Any:
        value = original(vm)
        if value is None:
            return api.Std.NONE
        if isinstance(value, dict):
            return {k: api.Std.NONE if v is None else v for k, v in value.items()}
        return value

    api.Std.from_str = staticmethod(from_str)  # type: ignore[method-assign]


def main() -> None:
    _patch_std()
    from torch.distributed import run  # noqa: WPS433

    sys.argv[0] = "torchrun"
    run.main()


if __name__ == "__main__":
    main()
