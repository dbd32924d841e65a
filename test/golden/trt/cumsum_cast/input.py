import torch as th


def positions(attention_mask: th.LongTensor):
    # Position ids from an attention mask, as many decoders compute them.
    pos = attention_mask.cumsum(-1) - 1
    return pos


def counts(tokens, pad):
    keep = (tokens != pad).long()
    running = th.cumsum(keep * 2, dim=1)
    flags = th.cumsum(tokens == pad, 1)
    return running, flags
