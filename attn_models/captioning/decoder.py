"""The Show, Attend and Tell decoder (Xu et al. 2015, Sec. 3.1.2) with soft and hard attention.

Per step t, from the previous state h_{t-1}:
  e_ti  = w^T tanh(W_a a_i + W_h h_{t-1})                  additive attention (f_att)
  alpha = softmax(e_t)                                      over the L grid locations
  beta  = sigmoid(f_beta(h_{t-1}))                          the scalar gate (Sec. 4.2.1)
  z_t   = beta * sum_i alpha_ti a_i           (soft)        deterministic expected context
        = beta * a_{s_t},  s_t ~ Mult(alpha_t) (hard)       stochastic location
  h_t, c_t = LSTM([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))
  p(y_t) ∝ exp(L_o tanh(E y_{t-1} + L_h h_t + L_z z_t))     the deep output layer (Eq. 7; the tanh
                                                            follows the authors' arctic-captions code)
h_0 and c_0 come from MLPs on the mean annotation (Sec. 3.1.2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Context modes of one decoding step.
SOFT, SAMPLE, EXPECT, ARGMAX = "soft", "sample", "expect", "argmax"


@dataclass
class StepOut:
    logits: torch.Tensor  # (B, V)
    h: torch.Tensor  # (B, H)
    c: torch.Tensor  # (B, H)
    alpha: torch.Tensor  # (B, L) the attention distribution (one-hot for hard argmax at test time)
    beta: torch.Tensor  # (B,)
    log_p_loc: torch.Tensor | None = None  # (B,) log alpha[s_t] of the sampled location (hard, training)
    entropy: torch.Tensor | None = None  # (B,) entropy of alpha_t


class AttentionDecoder(nn.Module):
    def __init__(self, vocab_size: int, annot_dim: int, embed_dim: int = 64, hidden_dim: int = 256,
                 attn_dim: int = 128, dropout: float = 0.3):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.init_h = nn.Sequential(nn.Linear(annot_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, hidden_dim))
        self.init_c = nn.Sequential(nn.Linear(annot_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, hidden_dim))
        self.att_a = nn.Linear(annot_dim, attn_dim)
        self.att_h = nn.Linear(hidden_dim, attn_dim, bias=False)
        self.att_v = nn.Linear(attn_dim, 1)
        self.f_beta = nn.Linear(hidden_dim, 1)
        self.lstm = nn.LSTMCell(embed_dim + annot_dim, hidden_dim)
        self.out_h = nn.Linear(hidden_dim, embed_dim)  # L_h
        self.out_z = nn.Linear(annot_dim, embed_dim, bias=False)  # L_z
        self.out_o = nn.Linear(embed_dim, vocab_size)  # L_o
        self.drop = nn.Dropout(dropout)

    def init_state(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = a.mean(dim=1)  # (B, D)
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))

    def project(self, a: torch.Tensor) -> torch.Tensor:
        """W_a a_i, computed once per image: (B, L, D) -> (B, L, A)."""
        return self.att_a(a)

    def step(self, a: torch.Tensor, a_proj: torch.Tensor, y_prev: torch.Tensor, h: torch.Tensor,
             c: torch.Tensor, mode: str | torch.Tensor = SOFT,
             generator: torch.Generator | None = None) -> StepOut:
        """One step. ``mode`` is a context mode, or for hard-attention training a bool tensor (B,)
        that is True where the expected context replaces the sample (the paper's 0.5 trick)."""
        scores = self.att_v(torch.tanh(a_proj + self.att_h(h)[:, None, :])).squeeze(-1)  # (B, L)
        log_alpha = F.log_softmax(scores, dim=-1)
        alpha = log_alpha.exp()
        beta = torch.sigmoid(self.f_beta(h)).squeeze(-1)  # (B,)
        soft_ctx = torch.bmm(alpha[:, None, :], a).squeeze(1)  # (B, D)
        log_p_loc = entropy = None
        if isinstance(mode, str) and mode in (SOFT, EXPECT):
            ctx = soft_ctx
        elif isinstance(mode, str) and mode == ARGMAX:
            idx = alpha.argmax(dim=-1)
            ctx = a[torch.arange(a.shape[0], device=a.device), idx]
            alpha = F.one_hot(idx, alpha.shape[-1]).to(alpha.dtype)
        else:  # hard attention, training: s_t ~ Multinoulli(alpha_t)
            idx = torch.multinomial(alpha.detach(), 1, generator=generator).squeeze(-1)  # (B,)
            ctx = a[torch.arange(a.shape[0], device=a.device), idx]
            log_p_loc = log_alpha.gather(1, idx[:, None]).squeeze(-1)
            entropy = -(alpha * log_alpha).sum(-1)
            if isinstance(mode, torch.Tensor):
                ctx = torch.where(mode[:, None], soft_ctx, ctx)
        z = beta[:, None] * ctx
        emb = self.embed(y_prev)
        h, c = self.lstm(torch.cat([emb, z], dim=-1), (h, c))
        logits = self.out_o(self.drop(torch.tanh(emb + self.out_h(self.drop(h)) + self.out_z(z))))
        return StepOut(logits, h, c, alpha, beta, log_p_loc, entropy)

    def forward(self, a: torch.Tensor, tokens_in: torch.Tensor, mode: str | torch.Tensor = SOFT,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Teacher forcing. a: (B, L, D); tokens_in: (B, T) starting with <start>.

        Returns logits (B, T, V), alphas (B, T, L), betas (B, T) and, when sampling, log_p_loc and
        entropy (B, T)."""
        h, c = self.init_state(a)
        a_proj = self.project(a)
        outs = []
        for t in range(tokens_in.shape[1]):
            o = self.step(a, a_proj, tokens_in[:, t], h, c, mode, generator)
            h, c = o.h, o.c
            outs.append(o)
        res = {
            "logits": torch.stack([o.logits for o in outs], 1),
            "alphas": torch.stack([o.alpha for o in outs], 1),
            "betas": torch.stack([o.beta for o in outs], 1),
        }
        if outs and outs[0].log_p_loc is not None:
            res["log_p_loc"] = torch.stack([o.log_p_loc for o in outs], 1)
            res["entropy"] = torch.stack([o.entropy for o in outs], 1)
        return res
