"""Code2LoRA-Evo's memory: a GRU over a repository's stream of production diffs.

    s_0 = tanh(W e_0)              e_0: the first kept commit's diff (against the empty
                                   tree, i.e. the first snapshot); with ``init_mlp`` a
                                   2-layer GELU MLP instead of W
    s_k = GRUCell(e_k, s_{k-1})    e_k: the diff since the previous kept commit; with
                                   ``layernorm``, LN(e_k) enters and LN(s_k) leaves
    adapter_k = head(s_k)

Diff vectors are standardised with statistics of the training repositories' diffs (see
``hypernetwork`` for why). Training backpropagates through at most ``tbptt`` commits: the
state entering each window of ``tbptt`` commits is computed without gradient (except the
first window, which reaches the initial projection).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class EvoConfig:
    state_dim: int = 512
    tbptt: int = 16
    layernorm: bool = False    # LayerNorm on each diff vector entering the GRU and on each state
    init_mlp: bool = False     # s_0 from a 2-layer GELU MLP of e_0 (else one linear layer)

    def to_dict(self) -> dict:
        return asdict(self)


class DiffGRU(nn.Module):
    def __init__(self, d_in: int, config: EvoConfig):
        super().__init__()
        self.d_in, self.config = d_in, config
        self.register_buffer("e_mean", torch.zeros(d_in))
        self.register_buffer("e_scale", torch.ones(d_in))
        if config.init_mlp:
            self.init = nn.Sequential(nn.Linear(d_in, config.state_dim), nn.GELU(),
                                      nn.Linear(config.state_dim, config.state_dim))
        else:
            self.init = nn.Linear(d_in, config.state_dim)
        self.cell = nn.GRUCell(d_in, config.state_dim)
        if config.layernorm:
            self.in_norm = nn.LayerNorm(d_in)
            self.state_norm = nn.LayerNorm(config.state_dim)

    @torch.no_grad()
    def fit_input_stats(self, e: torch.Tensor) -> None:
        self.e_mean.copy_(e.mean(0))
        spread = e.std(0, unbiased=False) if len(e) > 1 else torch.ones_like(self.e_mean)
        self.e_scale.copy_(spread.clamp(min=1e-3 * float(spread.max().clamp(min=1e-8))))

    def _norm(self, e: torch.Tensor) -> torch.Tensor:
        e = (e - self.e_mean) / self.e_scale
        return self.in_norm(e) if self.config.layernorm else e

    def _state(self, h: torch.Tensor) -> torch.Tensor:
        return self.state_norm(h) if self.config.layernorm else h

    def initial(self, e0: torch.Tensor) -> torch.Tensor:
        return self._state(torch.tanh(self.init(self._norm(e0))))         # (..., state)

    def step(self, state: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self._state(self.cell(self._norm(e), state))               # (b, state)

    def run(self, seq: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        """States after each diff of ``seq`` (T, d_in): (T, state). With ``start`` (a stored
        state), every diff is folded into it; otherwise the first diff is the snapshot."""
        states = []
        h = start[None] if start is not None else self.initial(seq[:1])
        if start is None:
            states.append(h[0])
            seq = seq[1:]
        for e in seq:
            h = self.step(h, e[None])
            states.append(h[0])
        return torch.stack(states) if states else seq.new_zeros((0, self.config.state_dim))

    def states_for(self, seqs: dict[str, torch.Tensor],
                   rows: list[tuple[str, int]]) -> torch.Tensor:
        """Training states for (repository, commit position) rows, (n, state), with truncated
        backpropagation: gradients reach back to the start of the row's window."""
        w = self.config.tbptt
        groups: dict[tuple[str, int], list[int]] = {}
        for i, (repo, k) in enumerate(rows):
            groups.setdefault((repo, k // w * w), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(rows)
        for (repo, anchor), idx in sorted(groups.items()):
            seq = seqs[repo].to(self.e_mean.device)                        # (T, d_in)
            if anchor == 0:
                h = self.initial(seq[:1])                                  # s_0, with gradient
            else:
                with torch.no_grad():                                      # s_{anchor-1}, cut
                    h = self.run(seq[:anchor])[-1:].detach()
            want: dict[int, list[int]] = {}
            for i in idx:
                want.setdefault(rows[i][1], []).append(i)
            for k in range(anchor, max(want) + 1):
                if k > 0:
                    h = self.step(h, seq[k:k + 1])                         # s_k
                for i in want.get(k, []):
                    out[i] = h[0]
        return torch.stack(out)  # type: ignore[arg-type]
