"""Two gloo processes fine-tune a model with batch normalization: after each epoch every process holds rank 0's
buffers, so the per-epoch eval (sharded over the processes) measures the very model the checkpoint saves.

DDP broadcasts buffers before each forward only; without the end-of-epoch broadcast each process's BN running
statistics would end on its own last batch."""

import os
import subprocess
import sys
import textwrap

import torch

BACKEND = os.path.join(os.path.dirname(__file__), "..")

WORKER = textwrap.dedent(
    """
    import os, sys
    import torch
    import torch.distributed as dist
    from torch import nn
    from qdq_backend import qat, qat_worker

    def worker(rank, out):
        dist.init_process_group("gloo", init_method="file://" + os.path.join(out, "rendezvous"),
                                rank=rank, world_size=2)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
        ddp = nn.parallel.DistributedDataParallel(model)
        g = torch.Generator().manual_seed(1)
        data = [((torch.randn(8, 1, 8, 8, generator=g) * (1 + i),), torch.randint(0, 3, (8,), generator=g))
                for i in range(4)]
        qat.fine_tune(ddp, model, [], lambda epoch: data, len(data), qat.cross_entropy_step,
                      qat.QatConfig(epochs=1, lr=1e-2), coll=qat_worker._collectives(torch.device("cpu")))
        torch.save(dict(model.named_buffers()), os.path.join(out, "rank%d.pt" % rank))
        dist.barrier()
        os._exit(0)  # past gloo's teardown, which can hang at exit (the launcher ends such workers itself)

    if __name__ == "__main__":
        torch.multiprocessing.spawn(worker, args=(sys.argv[1],), nprocs=2)
    """
)


def test_after_an_epoch_every_process_holds_rank0s_buffers(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=os.path.abspath(BACKEND), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, timeout=240)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rank0, rank1 = (torch.load(str(tmp_path / f"rank{r}.pt")) for r in (0, 1))
    assert set(rank0) == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
