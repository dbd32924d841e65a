import torch


def f(x, y):
    # Unknown dtypes: no rewrite is safe, so the file must come back unchanged.
    c = torch.cumsum(x, 1)
    u = torch.unique(y)
    b = y.byte()
    return c, u, b
