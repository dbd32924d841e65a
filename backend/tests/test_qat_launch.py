"""The torchrun launcher's event loop (qat_launch._follow) against stand-in processes: a run that reported "done"
(every epoch saved) but whose process does not exit is ended after a grace period and counts as finished; one that
never reported "done" is not."""

import queue
import subprocess
import sys
import threading
import time

from qdq_backend import qat_launch


def _start(script):
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    events = queue.Queue()
    tail = []
    for stream, is_events in ((proc.stdout, True), (proc.stderr, False)):
        threading.Thread(target=qat_launch._pump, args=(stream, events, tail, is_events), daemon=True).start()
    return proc, events


def _emit(event):
    return f"print({qat_launch.EVENT_PREFIX!r} + {event!r}, flush=True)"


def test_a_process_that_hangs_after_done_is_ended_and_the_run_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(qat_launch, "DONE_GRACE_S", 1.0)
    proc, events = _start(_emit('{"event": "done"}') + "\nimport time\ntime.sleep(600)")
    started = time.monotonic()
    outcome = qat_launch._follow(proc, events, str(tmp_path / "stop"), lambda *a: None, lambda: False)
    assert outcome == {"event": "done", "ended_after_done": True}
    assert time.monotonic() - started < 30
    assert proc.wait(timeout=10) != 0


def test_without_done_the_loop_waits_for_the_process_and_reports_no_outcome(tmp_path, monkeypatch):
    monkeypatch.setattr(qat_launch, "DONE_GRACE_S", 0.5)
    proc, events = _start("import time\ntime.sleep(2)")
    outcome = qat_launch._follow(proc, events, str(tmp_path / "stop"), lambda *a: None, lambda: False)
    assert outcome == {}
    assert proc.wait(timeout=10) == 0
