import torch


def check(before, after):
    m = (torch.rand(3, 17) > 0.3).long()
    a, b = before.positions(m), after.positions(m)
    assert a.dtype == b.dtype and torch.equal(a, b)
    toks = torch.randint(0, 5, (2, 21))
    for x, y in zip(before.counts(toks, 0), after.counts(toks, 0)):
        assert x.dtype == y.dtype and torch.equal(x, y), (x.dtype, y.dtype)
