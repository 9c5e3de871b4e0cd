"""Beam search over the attention decoder (log-probabilities, integer index arithmetic).

Follows the authors' arctic-captions ``gen_sample``: the beam keeps ``k - finished`` live hypotheses;
a hypothesis that emits <end> is finished and shrinks the live beam; search stops when none is
live or after ``max_len`` words, in which case the live ones are finished without <end> (so a model
that never says <end> still returns a caption of ``max_len`` words). Finished hypotheses are ranked
by log-probability per emitted token (<end> included), which keeps beam search from preferring
short captions; with ``beam_size == 1`` this is exactly greedy decoding.

``beam_search_all`` returns every finished hypothesis (the n-best list, at most ``beam_size``), best first;
``beam_search`` is its first entry.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from attn_models.captioning.decoder import AttentionDecoder


@dataclass
class Hypothesis:
    tokens: list[int]  # emitted words, without <start>/<end>
    alphas: torch.Tensor  # (len(tokens), L)
    betas: torch.Tensor  # (len(tokens),)
    log_prob: float  # total, <end> included when it was emitted
    ended: bool

    @property
    def score(self) -> float:
        return self.log_prob / (len(self.tokens) + int(self.ended))


def beam_search(decoder: AttentionDecoder, a: torch.Tensor, start_id: int, end_id: int,
                banned: list[int], beam_size: int, max_len: int, mode: str) -> Hypothesis:
    """a: (1, L, D) annotations of one image. Returns the best hypothesis."""
    return beam_search_all(decoder, a, start_id, end_id, banned, beam_size, max_len, mode)[0]


@torch.no_grad()
def beam_search_all(decoder: AttentionDecoder, a: torch.Tensor, start_id: int, end_id: int,
                    banned: list[int], beam_size: int, max_len: int, mode: str) -> list[Hypothesis]:
    """a: (1, L, D) annotations of one image. Returns every finished hypothesis, best score first."""
    if a.shape[0] != 1:
        raise ValueError("beam_search takes one image at a time")
    L = a.shape[1]
    h, c = decoder.init_state(a)
    a_proj = decoder.project(a)
    last = torch.full((1,), start_id, dtype=torch.long, device=a.device)
    scores = torch.zeros(1, device=a.device)
    seqs = torch.zeros(1, 0, dtype=torch.long, device=a.device)
    alphas = torch.zeros(1, 0, L, device=a.device)
    betas = torch.zeros(1, 0, device=a.device)
    finished: list[Hypothesis] = []
    for _ in range(max_len):
        n = last.shape[0]
        o = decoder.step(a.expand(n, -1, -1), a_proj.expand(n, -1, -1), last, h, c, mode)
        logp = torch.log_softmax(o.logits.float(), dim=-1)  # (n, V)
        logp[:, banned] = float("-inf")
        vocab = logp.shape[1]
        cand = (scores[:, None] + logp).reshape(-1)
        k = beam_size - len(finished)
        top_scores, top_idx = cand.topk(min(k, cand.numel()))
        beam_idx = torch.div(top_idx, vocab, rounding_mode="floor")
        word_idx = top_idx % vocab
        new_alphas = torch.cat([alphas[beam_idx], o.alpha[beam_idx, None, :]], 1)
        new_betas = torch.cat([betas[beam_idx], o.beta[beam_idx, None]], 1)
        ends = word_idx == end_id
        for j in torch.nonzero(ends).flatten().tolist():
            b = int(beam_idx[j])
            finished.append(Hypothesis(seqs[b].tolist(), alphas[b], betas[b], float(top_scores[j]), True))
        keep = ~ends
        if not bool(keep.any()):
            break
        bi = beam_idx[keep]
        seqs = torch.cat([seqs[bi], word_idx[keep, None]], 1)
        alphas, betas = new_alphas[keep], new_betas[keep]
        scores, last = top_scores[keep], word_idx[keep]
        h, c = o.h[bi], o.c[bi]
        if len(finished) >= beam_size:
            break
    else:  # max_len reached: the live hypotheses end here, without <end>
        for j in range(seqs.shape[0]):
            finished.append(Hypothesis(seqs[j].tolist(), alphas[j], betas[j], float(scores[j]), False))
    # sorted() is stable with reverse=True: among equal scores the first finished stays first, as max() chose
    return sorted(finished, key=lambda hyp: hyp.score, reverse=True)
