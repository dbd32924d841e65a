import torch


def best(scores, k: int = 10):
    values, indices = torch.topk(scores, k, dim=-1, largest=True, sorted=False)
    top = scores.topk(5, -1, True, False)
    return values, indices, top
