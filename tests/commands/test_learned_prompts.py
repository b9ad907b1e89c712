"""CoOp and CoCoOp end to end: trained, exported with their learned prompts, evaluated and used for prediction
again from the export (the towers are the pre-trained ones; the prompts are what was learned)."""

from __future__ import annotations

import pytest
import torch

from clipood.commands import evaluate, load_classifier, train
from clipood.commands.predict import predict
from clipood.data.images import load_rgb
from clipood.errors import ConfigError
from clipood.methods import METHODS


@pytest.fixture(scope="module", params=["coop", "cocoop"])
def prompt_run(request, shapes_root, tiny_pretrained, tmp_path_factory):
    from clipood.config import Config
    cfg = METHODS[request.param].configure(Config())
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.data.root, cfg.data.workers, cfg.data.holdout_domains = str(shapes_root), 0, ["sketch"]
    cfg.data.base_to_new = True
    cfg.train.steps, cfg.train.batch_size, cfg.train.checkpoint_every, cfg.compute.device = 3, 2, 0, "cpu"
    cfg.optim.lr, cfg.eval.zeroshot = 0.05, False
    cfg.run.output_dir, cfg.run.name = str(tmp_path_factory.mktemp("runs")), request.param
    run, results = train(cfg, progress=False)
    return request.param, run.path, cfg, results


def test_the_export_evaluates_as_the_run_did(prompt_run, tmp_path):
    """`clipood eval` of the export puts the learned prompts back: the same accuracies, new classes included."""
    kind, path, cfg, results = prompt_run
    from clipood.io import read_json
    assert read_json(path / "model" / "clipood.json", "test")["head"] == kind
    again = evaluate(cfg, path / "model", tmp_path / "eval.json", progress=False)
    for name, e in results["final"].items():
        assert again["final"][name]["accuracy"] == pytest.approx(e["accuracy"])
        assert again["final"][name]["new"] == pytest.approx(e["new"])


def test_the_learned_context_moved_and_the_towers_did_not(prompt_run, tiny_pretrained):
    from safetensors.torch import load_file
    _, path, _, _ = prompt_run
    before, after = load_file(tiny_pretrained / "open_clip_model.safetensors"), \
        load_file(path / "model" / "open_clip_model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    clf = load_classifier(path)
    from clipood.model.prompts import PromptLearner
    fresh = PromptLearner(clf.model, clf.backbone.tokenizer, ["a"], ctx_init="a photo of a")
    assert not torch.allclose(fresh.ctx, clf.prompts.learner.ctx)


def test_predict_on_new_names_puts_the_learned_context_in_front_of_them(prompt_run, shapes_root):
    _, path, _, _ = prompt_run
    paths = sorted((shapes_root / "sketch").rglob("*.png"))[:4]
    names = ["zebra", "teapot", "violin"]
    pred = predict(path, [str(p) for p in paths], classes=names, top_k=3, progress=False, device="cpu")
    clf = load_classifier(path)
    head = clf.prompts.for_classes(names)
    with torch.no_grad():
        x = torch.stack([clf.preprocess(load_rgb(p)) for p in paths])
        f = torch.nn.functional.normalize(clf.model.encode_image(x).float(), dim=-1)
        probs = (head(f) / clf.temperature).softmax(-1)  # independent of Classifier.scores
    for row, top in zip(probs, pred.top):
        order = row.argsort(descending=True).tolist()
        assert [name for name, _ in top] == [names[j] for j in order]
        assert [p for _, p in top] == pytest.approx([row[j].item() for j in order], abs=1e-5)
    with pytest.raises(ConfigError, match=r"--template: does not apply to .*prompts are learned"):
        predict(path, [str(paths[0])], classes=names, templates=["a {}."], progress=False, device="cpu")


def test_a_class_specific_context_refuses_new_classes(tiny_config):
    cfg = METHODS["coop"].configure(tiny_config)
    cfg.tuning.class_specific, cfg.data.base_to_new = True, True
    from clipood.training.experiment import build_model
    with pytest.raises(ConfigError, match=r"--class-specific: .*cannot score the classes it was not trained on"):
        build_model(cfg)


def test_cocoop_evaluation_bounds_the_texts_per_pass(tiny_config, monkeypatch):
    """Each image has its own class texts: an evaluation pass holds at most TEXTS_PER_PASS of them, whatever
    --eval-batch-size says (256 images x 150 classes ran a 24 GB machine out of memory)."""
    from clipood.training import experiment
    monkeypatch.setattr(experiment, "TEXTS_PER_PASS", 20)
    cfg = METHODS["cocoop"].configure(tiny_config)
    cfg.eval.batch_size = 256
    m = experiment.build_model(cfg)
    scorer = m.class_weights()
    assert scorer.batch_size == 20 // len(m.index.class_names) and scorer.num_classes == len(m.index.class_names)
    seen = []
    original = m.classifier.head.learner.__class__.forward

    def counting(self, ctx_shift=None):
        seen.append(0 if ctx_shift is None else ctx_shift.shape[0] * len(self.class_names))
        return original(self, ctx_shift)
    monkeypatch.setattr(m.classifier.head.learner.__class__, "forward", counting)
    out = scorer.scores(torch.nn.functional.normalize(torch.randn(7, 32), dim=-1))
    assert out.shape == (7, len(m.index.class_names)) and max(seen) <= 20
