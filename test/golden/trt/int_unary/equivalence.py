import torch


def check(before, after):
    for x, y in zip(before.distances(9), after.distances(9)):
        assert x.dtype == y.dtype and torch.equal(x, y), (x.dtype, y.dtype)
