"""Options of the Code2LoRA methods (``--option KEY=VALUE``), with the training budget of
every trained method (``max_steps``, ``max_train_tasks_per_repo``, ``max_seq_len``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evaluators.budget import TrainOptions
from evaluators.context import ContextOptions
from evaluators.lora.config import DEFAULT_TARGETS

if TYPE_CHECKING:
    from .encoder import EncoderConfig
    from .evo import EvoConfig
    from .hypernetwork import HypernetConfig


@dataclass
class Code2LoRAOptions(TrainOptions, ContextOptions):
    """Hypernetwork, encoder and anti-collapse settings (rank 16, alpha 32, every projection)."""
    learning_rate: float = 5e-4
    encoder: str = "minilm"          # minilm | base
    chunk_tokens: int = 256
    max_chunks: int = 64             # per file or diff
    inputs: str = "files"            # Static: files | card (the API card) | files+card
    card_chars: int = 6000           # the API card's characters at most
    head: str = "direct"             # direct | per_layer | residual (shared LoRA + mixed basis)
    stabilise: bool = False          # log-scales from -3.5, scales in [1e-5, 0.3], normalised trunk
    basis: int = 4                   # residual head: basis adapters
    basis_r: int = 4                 # residual head: rank of each basis adapter
    update_l2: float = 0.0           # weight of the L2 penalty on the generated update
    # residual head: its shared LoRA is this trained adapter (a shared-lora checkpoint or a
    # PEFT directory of the same rank, alpha, projections and layers), frozen; only the
    # repository-conditioned residual trains
    init_shared: str = ""
    hidden: int = 256
    r: int = 16
    alpha: float = 32.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    standardise: bool = True         # standardise code vectors with training statistics
    contrastive: float = 0.0         # weight of the own-vs-other adapter hinge (0: off)
    margin: float = 0.1
    state_dim: int = 512             # Evo: GRU state size
    tbptt: int = 16                  # Evo: commits per backpropagation window
    diff_sections: int = 16          # Evo: files encoded per diff (evenly spaced; 0: all)
    diff_headers: bool = False       # Evo: keep git's header lines (diff --git, index, ---/+++, @@)
    evo_layernorm: bool = False      # Evo: LayerNorm on the GRU's inputs and states
    evo_init_mlp: bool = False       # Evo: the initial state from a 2-layer MLP
    # lm: trained through the frozen model's loss on the training tasks; reconstruct: trained
    # to reproduce the per-repository adapters of the per-repo-lora checkpoint targets=
    # (Text-to-LoRA's reconstruction training), no forward pass of the model
    objective: str = "lm"
    targets: str = ""
    audit: bool = True               # also score the mean and shuffled adapters

    def encoder_config(self) -> "EncoderConfig":
        from .encoder import EncoderConfig
        return EncoderConfig(name=self.encoder, chunk_tokens=self.chunk_tokens,  # type: ignore[arg-type]
                             overlap=min(32, self.chunk_tokens // 8), max_chunks=self.max_chunks,
                             inputs=self.inputs, card_chars=self.card_chars)

    def hypernet_config(self, standardise: bool | None = None) -> "HypernetConfig":
        from .heads import HeadConfig
        from .hypernetwork import HypernetConfig
        return HypernetConfig(head=HeadConfig(kind=self.head, hidden=self.hidden, r=self.r,  # type: ignore[arg-type]
                                              alpha=self.alpha, stabilise=self.stabilise,
                                              basis=self.basis, basis_r=self.basis_r),
                              standardise=self.standardise if standardise is None else standardise,
                              target_modules=tuple(self.target_modules))

    def evo_config(self) -> "EvoConfig":
        from .evo import EvoConfig
        return EvoConfig(state_dim=self.state_dim, tbptt=self.tbptt,
                         layernorm=self.evo_layernorm, init_mlp=self.evo_init_mlp)
