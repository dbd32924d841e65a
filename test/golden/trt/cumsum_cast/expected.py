import torch as th


def positions(attention_mask: th.LongTensor):
    # Position ids from an attention mask, as many decoders compute them.
    pos = attention_mask.float().cumsum(-1).long() - 1
    return pos


def counts(tokens, pad):
    keep = (tokens != pad).long()
    running = th.cumsum((keep * 2).float(), dim=1).long()
    flags = th.cumsum((tokens == pad).float(), 1).long()
    return running, flags
