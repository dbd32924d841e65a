import torch


def best(scores, k: int = 10):
    values, indices = torch.topk(scores, k, dim=-1, largest=True, sorted=True)
    top = scores.topk(5, -1, True, True)
    return values, indices, top
