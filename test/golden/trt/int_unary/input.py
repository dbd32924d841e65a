import torch


def distances(n: int):
    idx = torch.arange(n)
    rel = idx[None, :] - idx[:, None]
    scale = torch.sqrt(rel.abs() + 1)
    bucket = torch.floor(rel)
    logs = (rel.abs() + 1).log()
    return scale, bucket, logs
