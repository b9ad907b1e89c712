"""README.md's Python API examples run as written (on the tiny model and the generated shapes)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_the_two_python_examples():
    blocks = _examples()
    assert len(blocks) == 2 and "clipood.train(cfg)" in blocks[0] and "BetaMovingAverage" in blocks[1]


def test_the_whole_run_example(tmp_path, monkeypatch, capsys):
    from clipood.data.synthetic import make_shapes_dataset
    make_shapes_dataset(tmp_path / "data" / "shapes", per_class=4, size=32)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_examples()[0], "README.md (whole run)", "exec"), scope)
    assert 0.0 <= float(capsys.readouterr().out.strip().splitlines()[-1]) <= 1.0
    from clipood.data.folder import scan
    assert scope["classifier"].class_names == scan(tmp_path / "data" / "shapes").class_names
    assert (tmp_path / "runs").is_dir() and scope["results"]["kind"] == "train"


def test_the_own_loop_example():
    import torch
    scope: dict = {}
    exec(compile(_examples()[1], "README.md (own loop)", "exec"), scope)
    bma, model = scope["bma"], scope["model"]
    assert bma.last_step == scope["T"]
    assert all(torch.equal(a, t) for a, t in zip(bma.average, bma.live))  # copy_to put the average in the model
    assert model.visual is not None
