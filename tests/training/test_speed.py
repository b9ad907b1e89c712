"""Execution options change speed and memory, never the update: each gives the baseline's weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from clipood.commands import train as run_train
from clipood.config import Config
from clipood.errors import ConfigError
from clipood.training import speed
from clipood.training.experiment import build_experiment
from clipood.training.loop import train_step


def _config(root, pretrained, out, name, **train) -> Config:
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{pretrained}", "auto"
    cfg.data.root, cfg.data.workers, cfg.data.holdout_domains = str(root), 0, ["sketch"]
    cfg.train.steps, cfg.train.batch_size, cfg.train.checkpoint_every = 3, 3, 0
    cfg.compute.device = "cpu"
    # lr-sized Adam steps on elements whose true gradient is 0 would turn round-off into
    # visible differences; a larger eps keeps the update a smooth function of the gradient.
    cfg.optim.lr, cfg.optim.eps = 1e-3, 1e-4
    cfg.eval.zeroshot, cfg.eval.batch_size = False, 64
    cfg.run.output_dir, cfg.run.name = str(out), name
    for k, v in train.items():
        setattr(cfg.compute if k == "precision" else cfg.train, k, v)
    return cfg


def _weights(cfg) -> dict:
    run, _ = run_train(cfg, progress=False)
    return load_file(str(run.model_dir / "open_clip_model.safetensors"))


@pytest.fixture(scope="module")
def baseline(shapes_root, tiny_pretrained, tmp_path_factory):
    return _weights(_config(shapes_root, tiny_pretrained, tmp_path_factory.mktemp("base"), "base"))


@pytest.mark.parametrize("options", [
    {"accum_steps": 2},
    {"accum_steps": 4},  # 9 images: micro-batches of 3, 2, 2, 2
    {"grad_checkpointing": True},
    {"channels_last": "on"},
    {"accum_steps": 3, "grad_checkpointing": True, "channels_last": "on"},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_option_gives_the_same_update(baseline, shapes_root, tiny_pretrained, tmp_path, options):
    got = _weights(_config(shapes_root, tiny_pretrained, tmp_path, "opt", **options))
    start = load_file(str(tiny_pretrained / "open_clip_model.safetensors"))
    assert any(not torch.equal(baseline[k], start[k]) for k in baseline)
    for k in baseline:
        torch.testing.assert_close(got[k], baseline[k], rtol=1e-5, atol=1e-7, msg=lambda m: f"{k}: {m}")


def test_compile_option_trains_through_dynamo(baseline, shapes_root, tiny_pretrained, tmp_path, monkeypatch):
    """--compile wraps the image tower in torch.compile (eager backend here: no C++ build in tests)."""
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setattr(speed, "COMPILE_OPTIONS", {"backend": "eager"})
    got = _weights(_config(shapes_root, tiny_pretrained, tmp_path, "compiled", compile=True))
    assert counters["stats"]["unique_graphs"] >= 1, "dynamo captured the image tower"
    for k in baseline:
        torch.testing.assert_close(got[k], baseline[k], rtol=1e-5, atol=1e-7, msg=lambda m: f"{k}: {m}")
    torch._dynamo.reset()


def test_grad_checkpointing_recomputes_blocks_in_backward(shapes_root, tiny_pretrained, tmp_path):
    calls = {}
    for on in (False, True):
        exp = build_experiment(_config(shapes_root, tiny_pretrained, tmp_path, "gc", grad_checkpointing=on))
        block = exp.classifier.visual.transformer.resblocks[0]
        n, forward = [0], block.forward  # (module hooks do not fire during recomputation)

        def counted(*args, _forward=forward, **kwargs):
            n[0] += 1
            return _forward(*args, **kwargs)
        block.forward = counted
        x = torch.randn(4, 3, 32, 32)
        train_step(exp, x, torch.tensor([0, 1, 2, 3]))
        calls[on] = n[0]
    assert calls == {False: 1, True: 2}


def test_micro_batches_cover_the_batch_in_order():
    for n in range(1, 30):
        for k in range(1, 9):
            parts = speed.micro_batches(n, k)
            sizes = [s.stop - s.start for s in parts]
            expected = [len(a) for a in np.array_split(np.arange(n), min(n, k))]
            assert sizes == expected and parts[0].start == 0 and parts[-1].stop == n


def test_channels_last_auto_only_for_convolutional_towers():
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import VisionTransformer
    vit = VisionTransformer(image_size=32, patch_size=8, width=32, layers=1, heads=2, mlp_ratio=2.0, output_dim=16)
    rn = ModifiedResNet(layers=(1, 1, 1, 1), output_dim=16, heads=2, image_size=64, width=8)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert not speed.is_convolutional(vit) and speed.is_convolutional(rn)
    assert speed.use_channels_last("auto", rn, cuda) and speed.use_channels_last("auto", rn, cpu)
    assert not speed.use_channels_last("auto", vit, cuda) and not speed.use_channels_last("auto", vit, cpu)
    assert speed.use_channels_last("on", vit, cpu) and not speed.use_channels_last("off", rn, cuda)
    with pytest.raises(ConfigError, match="--grad-checkpointing: the image tower \\(ModifiedResNet\\)"):
        speed.enable_grad_checkpointing(rn)


def test_accumulation_larger_than_the_batch_is_a_config_error(shapes_root, tiny_pretrained, tmp_path):
    cfg = _config(shapes_root, tiny_pretrained, tmp_path, "too-many", accum_steps=4)
    cfg.train.batch_size = 1  # 3 domains x 1 image
    with pytest.raises(ConfigError, match="--accum-steps: the global batch of 3 images"):
        run_train(cfg, progress=False)


def _image_update(weights: dict, start: dict) -> torch.Tensor:
    """The trained change of the image tower, flattened (the text tower is frozen)."""
    return torch.cat([(weights[k] - start[k]).flatten() for k in sorted(weights) if k.startswith("visual.")])


def test_bf16_autocast_keeps_fp32_weights_and_the_fp32_update(baseline, shapes_root, tiny_pretrained, tmp_path):
    """--precision bf16 (CPU autocast here, the same code path as CUDA): the forward really runs in
    bf16, the master weights and the exported average stay fp32, the update is the fp32 one up to
    bf16 rounding, and gradient accumulation under bf16 gives the full batch's update."""
    start = load_file(str(tiny_pretrained / "open_clip_model.safetensors"))
    full = _weights(_config(shapes_root, tiny_pretrained, tmp_path, "bf16", precision="bf16"))
    accum = _weights(_config(shapes_root, tiny_pretrained, tmp_path, "bf16-accum", precision="bf16", accum_steps=2))
    assert all(w.dtype == torch.float32 for w in (*full.values(), *accum.values()))
    ref, got, got_accum = (_image_update(w, start) for w in (baseline, full, accum))
    assert not torch.equal(got, ref), "bf16 autocast changed nothing: it did not run"
    assert float((got - ref).norm() / ref.norm()) < 0.05  # measured 0.012 on 3 steps of the tiny model
    assert float((got_accum - got).norm() / got.norm()) < 0.01  # measured 0.0016
