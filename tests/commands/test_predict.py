"""clipood predict: any class names at prediction time, one CSV row per image, the bad-image policy."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch

from clipood.commands import load_classifier
from clipood.commands.predict import image_paths, predict, read_classes, write_predictions
from clipood.data.images import load_rgb
from clipood.errors import ConfigError, DataError
from clipood.model.heads import encode_class_texts
from clipood.templates import expand_templates


def _images(shapes_root, n=5):
    return sorted((shapes_root / "sketch").rglob("*.png"))[:n]


def test_new_classes_score_as_the_direct_computation(trained_run, shapes_root):
    """Scores = softmax(S(I, T_c) / tau) over the given names, by an independent forward pass."""
    paths = _images(shapes_root)
    names = ["zebra", "teapot", "violin"]
    pred = predict(trained_run / "model", [str(p) for p in paths], classes=names, templates=["a drawing of a {}."],
                   top_k=3, progress=False, device="cpu")
    clf = load_classifier(trained_run / "model")
    text = encode_class_texts(clf.model, clf.backbone.tokenizer, names, ["a drawing of a {}."])
    with torch.no_grad():
        x = torch.stack([clf.preprocess(load_rgb(p)) for p in paths])
        f = torch.nn.functional.normalize(clf.model.encode_image(x).float(), dim=-1)
        probs = (f @ text.T / clf.temperature).softmax(-1)
    for row, top in zip(probs, pred.top):
        order = row.argsort(descending=True).tolist()
        assert [name for name, _ in top] == [names[j] for j in order]
        assert [p for _, p in top] == pytest.approx([row[j].item() for j in order], abs=1e-5)
    assert pred.classes == names and not pred.errors


def test_the_models_own_classes_without_classes(trained_run, shapes_root):
    pred = predict(trained_run / "model", [str(shapes_root / "sketch")], top_k=2, progress=False, device="cpu")
    clf = load_classifier(trained_run / "model")
    assert pred.classes == clf.class_names and len(pred.paths) == len(list((shapes_root / "sketch").rglob("*.png")))
    with pytest.raises(ConfigError, match="--template: applies with --classes"):
        predict(trained_run / "model", [str(shapes_root / "sketch")], templates=["a {}."], progress=False)


def test_inputs_files_folders_and_list_files(shapes_root, tmp_path):
    a, b, c = _images(shapes_root, 3)
    lst = tmp_path / "list.txt"
    lst.write_text(f"# images\n{a}\n\n{b}\n")
    got = image_paths([str(lst), str(a), str(c)])
    assert got == [str(a), str(b), str(c)]  # each image once, in the order given
    assert len(image_paths([str(shapes_root / "sketch")])) == len(list((shapes_root / "sketch").rglob("*.png")))
    with pytest.raises(DataError, match="no such file or folder"):
        image_paths([str(tmp_path / "nope")])
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(DataError, match="not an image file"):
        image_paths([str(tmp_path / "notes.md")])
    lst.write_text("missing.png\n")
    with pytest.raises(DataError, match="line 1: .*missing.png is not a file"):
        image_paths([str(lst)])


def test_class_lists(tmp_path):
    assert read_classes("zebra, teapot ,violin", None) == ["zebra", "teapot", "violin"]
    f = tmp_path / "c.txt"
    f.write_text("zebra\n# no\nteapot\n")
    assert read_classes(None, f) == ["zebra", "teapot"]
    assert read_classes(None, None) is None
    for bad, match in [(("a", None), "at least two"), (("a,b,a", None), "appear twice: a"), (("a,b", f), "one of")]:
        with pytest.raises(ConfigError, match=match):
            read_classes(*bad)


def test_cli_one_row_per_image_and_bad_images(trained_run, shapes_root, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in _images(shapes_root, 3):
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "p.csv"
    cmd = [sys.executable, "-m", "clipood", "predict", "--model", str(trained_run / "model"), "--classes",
           "zebra,teapot,violin", str(folder), "--out", str(out), "--device", "cpu", "--top-k", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "broken.png: unreadable image" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run(cmd + ["--bad-images", "skip"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and list(rows[0]) == ["path", "label_1", "score_1", "label_2", "score_2", "error"]
    broken = [r for r in rows if r["path"].endswith("broken.png")][0]
    assert broken["label_1"] == "" and broken["error"]
    assert all(r["label_1"] in ("zebra", "teapot", "violin") for r in rows if r is not broken)
    assert "predicted 3 image(s) over 3 classes" in res.stdout and "1 unreadable, skipped" in res.stdout


def test_out_folder_is_refused(trained_run, shapes_root, tmp_path):
    pred = predict(trained_run / "model", [str(_images(shapes_root, 1)[0])], classes=["a", "b"], progress=False)
    with pytest.raises(ConfigError, match="is a folder"):
        write_predictions(pred, tmp_path, 5)
    assert expand_templates(["simple"])  # presets apply to predict's --template too


def test_a_wrong_model_is_named_before_the_images_are_scanned(tmp_path):
    """A typo in --model is the error shown, not a problem found while scanning a large input folder."""
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "loop").symlink_to(tmp_path / "imgs")  # scanning would refuse this loop
    with pytest.raises(Exception, match="not an exported model folder"):
        predict(tmp_path / "no-such-model", [str(tmp_path / "imgs")], classes=["a", "b"], progress=False)


def test_a_run_folder_is_a_model(trained_run, shapes_root):
    """--model RUN_DIR works as --model RUN_DIR/model does, with new class names too."""
    images = [str(p) for p in _images(shapes_root, 2)]
    a = predict(trained_run, images, classes=["zebra", "teapot"], progress=False)
    b = predict(trained_run / "model", images, classes=["zebra", "teapot"], progress=False)
    assert a.top == b.top


def test_a_top_k_above_the_class_count_is_said(trained_run, shapes_root, capsys):
    pred = predict(trained_run, [str(_images(shapes_root, 1)[0])], classes=["zebra", "teapot"], top_k=5,
                   progress=False)
    assert len(pred.top[0]) == 2
    assert "clipood: warning: --top-k 5: there are 2 classes; each row lists all 2" in capsys.readouterr().err


# ------------------------------------------------------------------ issue 23


def _cli(capsys, argv):
    from clipood.cli import main
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_a_fifo_among_the_inputs_is_named_not_opened_case5b(trained_run, shapes_root, tmp_path):
    import os
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(_images(shapes_root, 1)[0].read_bytes())
    os.mkfifo(folder / "pipe.png")
    with pytest.raises(DataError, match=r"pipe.png: a FIFO \(named pipe\), not an image file"):
        image_paths([folder])
    with pytest.raises(DataError, match=r"pipe.png: a FIFO \(named pipe\), not an image file nor a list of paths"):
        image_paths([folder / "pipe.png"])
    listing = tmp_path / "list.txt"
    listing.write_text("imgs/a.png\nimgs/pipe.png\n")
    with pytest.raises(DataError, match=r"list.txt, line 2: .*pipe.png is a FIFO \(named pipe\)"):
        image_paths([listing])


def test_user_text_files_with_a_byte_order_mark_case9(tmp_path, shapes_root):
    names = tmp_path / "names.txt"
    names.write_bytes("\ufeffcircle\nsquare\n".encode())
    assert read_classes(None, names) == ["circle", "square"]
    listing = tmp_path / "list.txt"
    img = _images(shapes_root, 1)[0]
    listing.write_bytes(f"\ufeff{img}\n".encode())
    assert image_paths([listing]) == [str(img)]


def test_damaged_inputs_and_records_are_one_line_case7c(trained_run, shapes_root, tmp_path, capsys):
    import json
    import shutil
    img = str(_images(shapes_root, 1)[0])
    listing = tmp_path / "list.txt"
    listing.write_bytes(f"{img}\n# caf\xe9\n".encode("latin-1"))
    code, err = _cli(capsys, ["predict", "--model", str(trained_run), str(listing), "--no-progress"])
    assert code == 2 and err == f"clipood: error: INPUT: {listing} is not UTF-8 text (invalid continuation byte at " \
                                f"byte {len(img) + 6}); save it as UTF-8"
    model = tmp_path / "model"
    shutil.copytree(trained_run / "model", model)
    meta = json.loads((model / "clipood.json").read_text())
    for field, value in (("temperature", "hot"), ("temperature", -1), ("class_names", "circle"), ("head", "mlp"),
                         ("templates", ["no braces"])):
        (model / "clipood.json").write_text(json.dumps({**meta, field: value}))
        code, err = _cli(capsys, ["predict", "--model", str(model), img, "--no-progress",
                                  "--out", str(tmp_path / "p.csv")])
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert f"{model / 'clipood.json'} is not a valid clipood model record ('{field}' is {value!r})" in err
    code, err = _cli(capsys, ["predict", "--model", str(trained_run), img, "--workers", "-1", "--no-progress"])
    assert code == 2 and err == "clipood: error: --workers: -1 is out of range; allowed: an integer >= 0"
