import torch


def combine(a, b, pad_id: int):
    pad = a.eq(pad_id)
    special = b.gt(100)
    either = torch.logical_or(pad, special)
    both = torch.logical_and(pad, special)
    return either, both
