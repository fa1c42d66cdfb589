"""Per-row LoRA: a batch mixing adapters and base rows gives, row by row, the logits of
``peft.PeftModel`` with that row's adapter; adapters round-trip through the PEFT files."""
from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from evaluators.lora.config import LoraSpec  # noqa: E402
from evaluators.lora.model import LoraAdapter, PerRowLora  # noqa: E402
from repopeftbench.errors import UserError  # noqa: E402

from conftest import make_peft_adapter, make_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_mixed_batch_matches_peft_per_row(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    all_targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    dirs = [make_peft_adapter(tiny, tmp_path / "a0", 0, 4, tuple(all_targets)),
            make_peft_adapter(tiny, tmp_path / "a1", 1, 8, ("q_proj", "v_proj")),
            make_peft_adapter(tiny, tmp_path / "a2", 2, 2, ("down_proj", "o_proj"))]
    adapters = [LoraAdapter.load(d) for d in dirs]
    rows = [adapters[0], None, adapters[1], adapters[2], adapters[0], None]
    torch.manual_seed(7)
    ids = torch.randint(5, 300, (len(rows), 11))

    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    lora = PerRowLora(model, LoraSpec(r=8, alpha=16, target_modules=tuple(all_targets)))
    lora.set_adapters(rows)
    with torch.no_grad():
        mixed = model(input_ids=ids).logits

    base = AutoModelForCausalLM.from_pretrained(tiny).eval()
    with torch.no_grad():
        plain = base(input_ids=ids).logits
    for i, a in enumerate(rows):
        if a is None:
            torch.testing.assert_close(mixed[i], plain[i], atol=1e-5, rtol=0)
            continue
        ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny),
                                        dirs[adapters.index(a)]).eval()
        with torch.no_grad():
            want = ref(input_ids=ids[i:i + 1]).logits[0]
        torch.testing.assert_close(mixed[i], want, atol=1e-5, rtol=0)
        assert (want - plain[i]).abs().max() > 1e-3  # the adapter does change the logits

    # finished rows leave the batch: the remaining rows keep their own adapters
    keep = torch.tensor([0, 3])
    lora.select_rows(keep)
    with torch.no_grad():
        again = model(input_ids=ids[keep]).logits
    torch.testing.assert_close(again, mixed[keep], atol=1e-5, rtol=0)


def test_gradients_flow_to_generated_factors(tiny):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny)
    lora = PerRowLora(model, LoraSpec(r=2, alpha=4, target_modules=("q_proj",)))
    A = {p: torch.randn(3, 2, l.in_features, requires_grad=True) for p, l in lora.layers.items()}
    B = {p: torch.randn(3, l.out_features, 2, requires_grad=True) for p, l in lora.layers.items()}
    lora.set_batch(A, B, torch.full((3,), 2.0))
    model(input_ids=torch.randint(5, 300, (3, 6))).logits.sum().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in A.values())
    assert all(b.grad is not None and b.grad.abs().sum() > 0 for b in B.values())


def test_round_trip_and_bad_adapters(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    src = LoraAdapter.load(make_peft_adapter(tiny, tmp_path / "a", 3, 4, ("q_proj", "up_proj")))
    out = src.save(tmp_path / "copy")
    again = LoraAdapter.load(out)
    assert again.spec == src.spec and all(torch.equal(again.A[k], src.A[k]) for k in src.A)
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), out)  # loads

    lora = PerRowLora(AutoModelForCausalLM.from_pretrained(tiny))
    wrong = LoraAdapter(src.spec, {k: v[:, :-1] for k, v in src.A.items()}, dict(src.B), "wrong")
    with pytest.raises(UserError, match="another base model"):
        lora.set_adapters([wrong])
    alien = LoraAdapter(src.spec, {"model.nope.q_proj": next(iter(src.A.values()))},
                        {"model.nope.q_proj": next(iter(src.B.values()))}, "alien")
    with pytest.raises(UserError, match="not a LoRA target of this model"):
        lora.set_adapters([alien])
    with pytest.raises(UserError, match="not a PEFT adapter directory"):
        LoraAdapter.load(tmp_path)


def test_an_exported_adapter_of_an_offline_alias_loads_with_peft_alone(tiny, tmp_path, monkeypatch):
    """base_model_name_or_path of an exported adapter resolves with transformers alone: an
    offline alias is written as its converted directory (not the alias, which the hub does
    not know), and the adapter loaded as a user would gives the per-row LoRA logits."""
    import shutil

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from evaluators import models
    from repopeftbench.io import cache_root
    monkeypatch.setitem(models.ALIASES, "tiny-alias", models.ALIASES["smollm2"])
    converted = cache_root() / "models" / "tiny-alias"
    shutil.copytree(tiny, converted)                   # as if converted once before
    peft_dir = make_peft_adapter(tiny, tmp_path / "made", seed=3)
    adapter = LoraAdapter.load(peft_dir)
    adapter.base_model = "tiny-alias"
    out = adapter.save(tmp_path / "exported")
    import json
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(converted)
    user = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(
        config["base_model_name_or_path"]), str(out)).eval()
    ours = AutoModelForCausalLM.from_pretrained(tiny).eval()
    lora = PerRowLora(ours, adapter.spec)
    lora.set_adapters([adapter])
    ids = torch.tensor([[5, 9, 11, 20, 7]])
    with torch.no_grad():
        assert torch.allclose(user(input_ids=ids).logits, ours(input_ids=ids).logits, atol=1e-5)
    assert models.model_source("tiny-alias")["alias"] is True


def test_the_backend_keeps_adapters_within_its_byte_budget(tiny):
    """The HF backend's adapter LRU is bounded by count and by bytes (leave-one-out means
    of per-layer adapters are of full rank), keeping the newest; a tensor two modules share
    is counted once."""
    from evaluators.backends.base import AdapterWeights
    from evaluators.backends.hf import HFBackend, adapter_bytes
    from evaluators.lora.peft_format import lora_config_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer
    backend = HFBackend(AutoModelForCausalLM.from_pretrained(tiny), AutoTokenizer.from_pretrained(tiny),
                        progress=False)
    path = "model.layers.0.self_attn.q_proj"
    config = lora_config_dict(str(tiny), ["q_proj"], 2, 4.0)
    made = [AdapterWeights(f"a{i}", config, {f"base_model.model.{path}.lora_A.weight": torch.ones(2, 64),
                                             f"base_model.model.{path}.lora_B.weight": torch.ones(64, 2)})
            for i in range(4)]
    size = adapter_bytes(backend._adapter("a0", made[0]))
    assert size == 2 * 2 * 64 * 4
    backend.MAX_CACHED_ADAPTER_BYTES = 2 * size
    for i, w in enumerate(made[1:], 1):
        backend._adapter(f"a{i}", w)
    assert list(backend._adapters) == ["a2", "a3"]
    shared = torch.ones(2, 64)
    a = LoraAdapter(LoraSpec(2, 4.0, ("q_proj", "v_proj")), {"x": shared, "y": shared},
                    {"x": torch.ones(64, 2), "y": torch.ones(64, 2)})
    assert adapter_bytes(a) == 3 * 2 * 64 * 4


def test_the_mean_of_adapters_is_the_mean_of_their_updates_exactly():
    """The factors side by side (rank n r, alpha n alpha) make exactly the mean weight
    update, with no SVD; adapters of another shape are refused by name."""
    from evaluators.lora.peft_format import lora_config_dict, mean_peft_adapter
    g = torch.Generator().manual_seed(0)
    config = lora_config_dict("m", ["q_proj"], 2, 4.0, layers=(1,))
    keys = ("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight",
            "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight")
    adapters = [(config, {keys[0]: torch.randn(2, 5, generator=g),
                          keys[1]: torch.randn(3, 2, generator=g)}) for _ in range(3)]

    def update(cfg, t):
        return cfg["lora_alpha"] / cfg["r"] * t[keys[1]] @ t[keys[0]]

    mean_cfg, mean_t = mean_peft_adapter(adapters)
    assert (mean_cfg["r"], mean_cfg["lora_alpha"]) == (6, 12.0)
    want = sum(update(c, t) for c, t in adapters) / 3
    assert torch.allclose(update(mean_cfg, mean_t), want, atol=1e-6)
    assert LoraAdapter.from_peft_tensors(mean_cfg, mean_t).spec.scaling == 2.0
    one_cfg, one_t = mean_peft_adapter(adapters[:1])                 # one adapter: itself
    assert one_cfg == config and all(torch.equal(one_t[k], adapters[0][1][k]) for k in keys)
    # PEFT lists target_modules in a set's order, which differs between processes
    two = lora_config_dict("m", ["q_proj", "v_proj"], 2, 4.0, layers=(1,))
    assert mean_peft_adapter([({**two, "target_modules": ["v_proj", "q_proj"]}, adapters[0][1]),
                              (two, adapters[1][1])])[0]["r"] == 4
    other = ({**config, "r": 4}, adapters[1][1])
    with pytest.raises(UserError, match="the means: they differ in r"):
        mean_peft_adapter([adapters[0], other], "the means")
    with pytest.raises(UserError, match="plain LoRA"):
        mean_peft_adapter([({**config, "use_rslora": True}, adapters[0][1])])


def test_truncating_an_adapter_keeps_its_best_low_rank_update_and_says_how_far_it_is():
    """The mean of adapters brought down to a lower rank: exact when the updates span no
    more than the rank, the SVD's best approximation otherwise, with its residual; a
    leave-one-out mean made from the mean is exact, or as far off as the residual says."""
    from evaluators.lora.peft_format import (leave_one_out_peft_adapter, lora_config_dict,
                                             mean_peft_adapter, truncate_peft_adapter,
                                             update_norms)
    g = torch.Generator().manual_seed(1)
    config = lora_config_dict("m", ["q_proj"], 2, 4.0, layers=(1,))
    keys = ("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight",
            "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight")

    def update(cfg, t):
        return cfg["lora_alpha"] / cfg["r"] * t[keys[1]] @ t[keys[0]]

    shared_a, shared_b = torch.randn(2, 7, generator=g), torch.randn(6, 2, generator=g)
    same = [(config, {keys[0]: shared_a, keys[1]: shared_b * k}) for k in (1.0, 2.0, 3.0)]
    mean_cfg, mean_t = mean_peft_adapter(same)                   # rank 6, spans rank 2
    cfg, t, res = truncate_peft_adapter(mean_cfg, mean_t, 2)
    assert (cfg["r"], cfg["lora_alpha"]) == (2, 4.0) and res[keys[0]] < 1e-6
    assert torch.allclose(update(cfg, t), update(mean_cfg, mean_t), atol=1e-5)
    mixed = [(config, {keys[0]: torch.randn(2, 7, generator=g),
                       keys[1]: torch.randn(6, 2, generator=g)}) for _ in range(4)]
    mean_cfg, mean_t = mean_peft_adapter(mixed)
    full = update(mean_cfg, mean_t)
    assert update_norms(mean_cfg, mean_t)[keys[0]] == pytest.approx(float(torch.linalg.norm(full)),
                                                                     rel=1e-5)
    cfg, t, res = truncate_peft_adapter(mean_cfg, mean_t, 3)
    s = torch.linalg.svdvals(full.double())
    assert res[keys[0]] == pytest.approx(float((s[3:] ** 2).sum()) ** 0.5, rel=1e-6)  # Eckart-Young
    assert float(torch.linalg.norm(full - update(cfg, t))) == pytest.approx(res[keys[0]], rel=1e-4)
    assert truncate_peft_adapter(mean_cfg, mean_t, 8)[:2] == (mean_cfg, mean_t)
    # without one adapter: exact from the exact mean, within its error from the truncated one
    want = mean_peft_adapter(mixed[1:])
    c, x, err = leave_one_out_peft_adapter((mean_cfg, mean_t), 4, mixed[0])
    assert err == 0.0 and c["r"] == 10
    assert torch.allclose(update(c, x), update(*want), atol=1e-5)
    c, x, err = leave_one_out_peft_adapter((cfg, t), 4, mixed[0], res)
    off = float(torch.linalg.norm(update(c, x) - update(*want)) / torch.linalg.norm(update(*want)))
    assert c["r"] == 5 and 0 < off <= err
    with pytest.raises(UserError, match="plain LoRA"):
        truncate_peft_adapter({**mean_cfg, "use_dora": True}, mean_t, 2)
