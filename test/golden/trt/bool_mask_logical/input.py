import torch


def combine(a, b, pad_id: int):
    pad = a.eq(pad_id)
    special = b.gt(100)
    either = pad + special
    both = pad * special
    return either, both
