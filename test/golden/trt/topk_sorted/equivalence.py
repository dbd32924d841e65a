import torch


def check(before, after):
    s = torch.randn(4, 50)
    (v0, i0, t0), (v1, i1, t1) = before.best(s, 7), after.best(s, 7)
    # sorted=False leaves the order unspecified; the same k elements must come back.
    assert torch.equal(v0.sort(-1).values, v1.sort(-1).values)
    assert torch.equal(i0.sort(-1).values.sort(-1).values, i0.sort(-1).values)
    assert set(map(tuple, i0.sort(-1).values.tolist())) == set(map(tuple, i1.sort(-1).values.tolist()))
    assert torch.equal(t0.values.sort(-1).values, t1.values.sort(-1).values)
