import torch


def distances(n: int):
    idx = torch.arange(n)
    rel = idx[None, :] - idx[:, None]
    scale = torch.sqrt((rel.abs() + 1).float())
    bucket = rel
    logs = (rel.abs() + 1).float().log()
    return scale, bucket, logs
