"""The build configuration: everything that decides the bytes of a built benchmark."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from repopeftbench.io import canonical_json, sha256_text
from repopeftbench.schema import SCHEMA_VERSION
from repopeftbench.splits import parse_time

from .context_miner import ContextConfig
from .evolution_miner import EvolutionMinerConfig
from .static_miner import StaticMinerConfig

TRACKS = ("static", "evolution")


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the output bytes (not the worker count or paths)."""
    tracks: tuple[str, ...] = ("static",)
    seed: int = 0
    cutoff: str | None = None
    cr_val_fraction: float = 0.1
    cr_test_fraction: float = 0.1
    in_repo_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    static: StaticMinerConfig = field(default_factory=StaticMinerConfig)
    evolution: EvolutionMinerConfig = field(default_factory=EvolutionMinerConfig)
    context: ContextConfig = field(default_factory=ContextConfig)

    def __post_init__(self) -> None:
        unknown = set(self.tracks) - set(TRACKS)
        if unknown or not self.tracks:
            raise ValueError(f"unknown track(s) {sorted(unknown)}; available: {', '.join(TRACKS)}")
        if self.cutoff is not None:
            parse_time(self.cutoff)
        if not (0 <= self.cr_val_fraction and 0 <= self.cr_test_fraction
                and self.cr_val_fraction + self.cr_test_fraction < 1):
            raise ValueError(f"cross-repo fractions must be >= 0 and leave repositories to train "
                             f"on; got val {self.cr_val_fraction}, test {self.cr_test_fraction}")
        if abs(sum(self.in_repo_fractions) - 1.0) > 1e-9:
            raise ValueError(f"in_repo_fractions must sum to 1, got {self.in_repo_fractions}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tracks"] = sorted(self.tracks)
        d["in_repo_fractions"] = list(self.in_repo_fractions)
        d["schema_version"] = SCHEMA_VERSION
        d["profile"] = d["static"].pop("profile")  # the selection profile, recorded on top
        return d

    def hash(self) -> str:
        return sha256_text(canonical_json(self.to_dict()))[:16]
