"""Any CLIP in every command (issue 22, item 3): predict, eval and wise-ft take a plain open_clip model (a folder
without clipood.json, --arch NAME --pretrained TAG|FILE, --arch local-dir:PATH), not only a clipood export."""

from __future__ import annotations

import csv
import json

import open_clip
import pytest
import torch

from clipood.commands.predict import predict
from clipood.data.images import load_rgb
from clipood.errors import ClipoodError

NAMES = ["circle", "square", "star"]


def _images(shapes_root, n=4):
    return sorted((shapes_root / "sketch").rglob("*.png"))[:n]


def _cli(capsys, argv):
    from clipood.cli import main
    code = main(argv)
    return code, capsys.readouterr().err.strip()


@torch.no_grad()
def _open_clip_probabilities(model_name, paths, names, template="a photo of a {}.", pretrained=None):
    """softmax(logit_scale * cos(image, text)) computed with open_clip alone: its model, transform and tokenizer."""
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
    tokenizer = open_clip.get_tokenizer(model_name)
    model.eval()
    text = torch.nn.functional.normalize(model.encode_text(tokenizer([template.format(n) for n in names])), dim=-1)
    x = torch.stack([preprocess(load_rgb(p)) for p in paths])
    image = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
    return (model.logit_scale.exp() * image @ text.T).softmax(-1)


def _as_matrix(pred, names):
    return torch.tensor([[dict(top)[n] for n in names] for top in pred.top])


def test_a_plain_open_clip_folder_predicts_over_the_classes_given(tiny_pretrained, shapes_root):
    """--model FOLDER without clipood.json scores --classes as open_clip itself does (zero-shot CLIP)."""
    assert not (tiny_pretrained / "clipood.json").exists()
    paths = _images(shapes_root)
    pred = predict(tiny_pretrained, [str(p) for p in paths], classes=NAMES, top_k=3, progress=False, device="cpu")
    expected = _open_clip_probabilities(f"local-dir:{tiny_pretrained}", paths, NAMES)
    torch.testing.assert_close(_as_matrix(pred, NAMES), expected, atol=1e-5, rtol=1e-4)
    by_arch = predict(None, [str(p) for p in paths], classes=NAMES, top_k=3, progress=False, device="cpu",
                      arch=f"local-dir:{tiny_pretrained}")
    assert by_arch.top == pred.top


def test_a_named_architecture_with_a_weights_file(tiny_pretrained, shapes_root):
    """--arch NAME --pretrained FILE loads the file into NAME: the same model as its folder, the same scores."""
    paths = [str(p) for p in _images(shapes_root, 2)]
    weights = str(tiny_pretrained / "open_clip_model.safetensors")
    a = predict(None, paths, classes=NAMES, arch="clipood-tiny", pretrained=weights, progress=False, device="cpu",
                templates=["a drawing of a {}."])
    b = predict(tiny_pretrained, paths, classes=NAMES, progress=False, device="cpu", templates=["a drawing of a {}."])
    torch.testing.assert_close(_as_matrix(a, NAMES), _as_matrix(b, NAMES))


def test_what_to_pass_is_said_in_one_line(tiny_pretrained, shapes_root, capsys):
    img = str(_images(shapes_root, 1)[0])
    code, err = _cli(capsys, ["predict", "--model", str(tiny_pretrained), img, "--no-progress"])
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{tiny_pretrained} has no clipood.json: it is a plain open_clip model" in err and "--classes A,B,C" in err
    for argv, says in [
        (["--arch", "clipood-tiny", "--pretrained", "none", img], "a pre-trained CLIP has no classes of its own"),
        (["--classes", "a,b", img], "--model / --arch: give one of them"),
        (["--model", str(tiny_pretrained), "--arch", "clipood-tiny", "--classes", "a,b", img], "give one of them"),
        (["--model", str(tiny_pretrained), "--pretrained", "none", "--classes", "a,b", img],
         "--pretrained: applies with --arch"),
        (["--arch", "clipood-lite0-minilm", "--pretrained", "emoji", "--classes", "dog,cat,bicycle", img],
         "the 'emoji' weights of clipood-lite0-minilm are not built here"),  # the tests' cache holds no tag
    ]:
        code, err = _cli(capsys, ["predict", *argv, "--no-progress", "--device", "cpu"])
        assert code == 2 and len(err.splitlines()) == 1 and says in err, (argv, err)


def test_cli_lite0_minilm_with_an_installed_tag(shapes_root, tmp_path, capsys):
    """The acceptance's command, `predict --arch clipood-lite0-minilm --pretrained emoji --classes dog,cat,bicycle`,
    through the CLI. The emoji alignment takes minutes, so the tag installed here holds the packaged towers
    (unaligned): the same loading path (an installed clipood tag) and the same scoring, checked against open_clip on
    the installed folder."""
    from clipood.model import load_backbone
    from clipood.model.backbones import save_open_clip_folder
    from clipood.model.weights import installed_dir
    try:
        towers = load_backbone("clipood-lite0-minilm", "towers")
    except Exception as e:  # the tower packages are a test extra; say why it did not run
        pytest.skip(f"packaged towers not installed: {e}")
    folder = installed_dir("clipood-lite0-minilm", "emoji")
    save_open_clip_folder(towers, folder)
    try:
        paths = _images(shapes_root, 3)
        out = tmp_path / "p.csv"
        code, err = _cli(capsys, ["predict", "--arch", "clipood-lite0-minilm", "--pretrained", "emoji", "--classes",
                                  "dog,cat,bicycle", *map(str, paths), "--out", str(out), "--device", "cpu",
                                  "--no-progress"])
        assert code == 0, err
        rows = list(csv.DictReader(out.open()))
        assert [r["path"] for r in rows] == list(map(str, paths))
        got = torch.tensor([[float(r[f"score_{i}"]) for i in (1, 2, 3)] for r in rows])
        names = [[r[f"label_{i}"] for i in (1, 2, 3)] for r in rows]
        assert all(sorted(n) == ["bicycle", "cat", "dog"] for n in names)
        expected = _open_clip_probabilities(f"local-dir:{folder}", paths, ["dog", "cat", "bicycle"])
        for row, labels, p in zip(got, names, expected):
            order = [["dog", "cat", "bicycle"].index(n) for n in labels]
            torch.testing.assert_close(row, p[order].float(), atol=2e-6, rtol=1e-5)  # the CSV's 6 decimals
    finally:
        import shutil
        shutil.rmtree(folder.parent)


def _eval_args(shapes_root, *extra):
    return ["eval", "--root", str(shapes_root), "--holdout-domain", "sketch", "--workers", "0", "--device", "cpu",
            "--no-progress", *extra]


def test_eval_takes_any_clip(tiny_pretrained, shapes_root, tmp_path, capsys):
    """eval --arch local-dir:PATH, eval --model PATH (a plain folder) and a zero-shot run give the same accuracies."""
    from clipood.commands import zeroshot
    from clipood.config import Config
    outs = []
    for i, extra in enumerate([["--arch", f"local-dir:{tiny_pretrained}"], ["--model", str(tiny_pretrained)]]):
        out = tmp_path / f"{i}.json"
        code, err = _cli(capsys, _eval_args(shapes_root, *extra, "--out", str(out)))
        assert code == 0, err
        outs.append(json.loads(out.read_text()))
    cfg = Config()
    cfg.model.arch = f"local-dir:{tiny_pretrained}"
    cfg.data.root, cfg.data.workers, cfg.data.holdout_domains = str(shapes_root), 0, ["sketch"]
    cfg.compute.device, cfg.run.output_dir = "cpu", str(tmp_path / "runs")
    _, zs = zeroshot(cfg, progress=False)
    for split, e in zs["zeroshot"].items():
        assert outs[0]["final"][split]["accuracy"] == outs[1]["final"][split]["accuracy"] == e["accuracy"], split
    code, err = _cli(capsys, _eval_args(shapes_root))  # neither: not a silent evaluation of the default ViT-B-16
    assert code == 2 and err.startswith("clipood: error: eval: name the model to evaluate: --model DIR") and \
        len(err.splitlines()) == 1, err
    code, err = _cli(capsys, _eval_args(shapes_root, "--model", str(tiny_pretrained), "--arch", "clipood-tiny"))
    assert code == 2 and err == ("clipood: error: --arch: does not apply with --model, a model folder that carries "
                                 "its own architecture and weights; give --model or --arch/--pretrained, not both")


def test_wise_ft_with_model_a_by_name(trained_run, tiny_pretrained, shapes_root, tmp_path, capsys):
    """wise-ft MODEL_B --arch local-dir:A is wise-ft A MODEL_B; a model A of another architecture is refused."""
    from clipood.commands.wise_ft import wise_ft_models
    from clipood.config import Config
    from clipood.errors import ModelError
    cfg = Config()
    cfg.data.root, cfg.data.workers, cfg.data.holdout_domains = str(shapes_root), 0, ["sketch"]
    cfg.compute.device, cfg.run.output_dir = "cpu", str(tmp_path / "runs")
    cfg.run.name = "folders"
    _, by_folder = wise_ft_models(tiny_pretrained, trained_run / "model", cfg, [0.0, 0.5], progress=False)
    code, err = _cli(capsys, ["wise-ft", str(trained_run / "model"), "--arch", "clipood-tiny", "--pretrained",
                              str(tiny_pretrained / "open_clip_model.safetensors"), "--alphas", "0,0.5", "--root",
                              str(shapes_root), "--holdout-domain", "sketch", "--workers", "0", "--device", "cpu",
                              "--output-dir", str(tmp_path / "runs"), "--name", "by-name", "--no-progress"])
    assert code == 0, err
    by_name = json.loads((tmp_path / "runs" / "by-name" / "results.json").read_text())
    assert by_name["variants"] == by_folder["variants"]
    assert by_name["model_a"].startswith("clipood-tiny (")
    cfg.model.arch, cfg.model.pretrained, cfg.run.name = "clipood-tiny-towers", "none", "other"
    with pytest.raises(ModelError, match="different architectures"):
        wise_ft_models(None, trained_run / "model", cfg, [0.5], progress=False)
    for argv, says in [([str(trained_run)], "one model given"),
                       ([str(tiny_pretrained), str(trained_run), "--arch", "clipood-tiny"], "--arch: does not apply "
                                                                                            "with MODEL_A")]:
        code, err = _cli(capsys, ["wise-ft", *argv, "--root", str(shapes_root), "--no-progress"])
        assert code == 2 and says in err and len(err.splitlines()) == 1, err


def test_open_clips_torch_saved_weights_file_is_read(tiny_pretrained, tmp_path, shapes_root):
    """A folder holding open_clip_pytorch_model.bin (open_clip's other name) is a model folder too."""
    import shutil

    from safetensors.torch import load_file
    folder = tmp_path / "bin"
    folder.mkdir()
    shutil.copy(tiny_pretrained / "open_clip_config.json", folder)
    torch.save(load_file(str(tiny_pretrained / "open_clip_model.safetensors")), folder / "open_clip_pytorch_model.bin")
    paths = [str(p) for p in _images(shapes_root, 2)]
    a = predict(folder, paths, classes=NAMES, progress=False, device="cpu")
    b = predict(tiny_pretrained, paths, classes=NAMES, progress=False, device="cpu")
    assert a.top == b.top
    with pytest.raises(ClipoodError, match="not an exported model folder nor an open_clip one"):
        predict(tmp_path, paths, classes=NAMES, progress=False)
