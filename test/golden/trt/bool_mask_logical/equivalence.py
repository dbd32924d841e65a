import torch


def check(before, after):
    a = torch.randint(0, 3, (5, 7))
    b = torch.randint(90, 110, (5, 7))
    for x, y in zip(before.combine(a, b, 0), after.combine(a, b, 0)):
        assert x.dtype == y.dtype and torch.equal(x, y)
