"""The configuration tree: paper defaults, YAML round trip, precedence, validation errors.

(The docs/configuration.md sync check and the CLI's one-line errors are in test_cli.py.)
"""

from __future__ import annotations

import dataclasses

import pytest

from clipood.cli import build_parser, config_from_args
from clipood.config import (
    SECTIONS,
    Config,
    flag_name,
    from_dict,
    iter_fields,
    load_yaml,
    options_markdown,
    save_yaml,
    validate,
)
from clipood.errors import ConfigError
from clipood.templates import expand_templates


def test_defaults_are_the_papers():
    cfg = Config()
    assert cfg.optim.lr == 5e-6
    assert cfg.optim.weight_decay == 0.1
    assert cfg.optim.warmup_steps == 0
    assert cfg.loss.name == "mms"
    assert cfg.loss.margin_lambda == 0.3
    assert cfg.loss.temperature is None  # the backbone's own 1/logit_scale: 0.01 for CLIP, as the paper
    assert cfg.averaging.name == "bma"
    assert cfg.averaging.beta == 0.5
    assert cfg.averaging.every == 1
    assert cfg.train.steps == 5000
    assert cfg.train.batch_size == 12  # per training domain
    assert cfg.model.templates == ["auto"]  # the official code's prompt for the data: 'a photo of a {}.' here
    assert expand_templates(cfg.model.templates) == ["a photo of a {}."]
    assert cfg.model.activation == "auto"  # QuickGELU for OpenAI's weights, as clip.load
    assert cfg.model.trainable == "all"
    assert cfg.data.val_fraction == 0.2


def test_list_defaults_are_not_shared_between_configs():
    a, b = Config(), Config()
    a.model.templates.append("a sketch of a {}.")
    a.data.holdout_domains.append("sketch")
    assert b.model.templates == ["auto"] and b.data.holdout_domains == []


def _changed_config(tmp_path) -> Config:
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = "clipood-tiny", None
    cfg.model.templates = ["a photo of a {}.", "a drawing of a {}."]
    cfg.data.root = str(tmp_path)
    cfg.data.holdout_domains = ["sketch", "photo"]
    cfg.data.base_to_new = True
    cfg.data.shots = 16
    cfg.loss.name, cfg.loss.margin_lambda, cfg.loss.temperature = "fixed_margin", 0.1, 0.07
    cfg.averaging.name, cfg.averaging.beta, cfg.averaging.every = "ema", 0.1, 5
    cfg.optim.lr, cfg.optim.betas, cfg.optim.grad_clip = 1e-5, [0.8, 0.95], None
    cfg.train.steps, cfg.train.batch_size, cfg.compute.precision = 500, 36, "bf16"
    cfg.eval.zeroshot = False
    cfg.run.name = "x"
    return cfg


def test_yaml_round_trip(tmp_path):
    cfg = _changed_config(tmp_path)
    path = tmp_path / "config.yaml"
    save_yaml(cfg, path)
    loaded = load_yaml(path)
    assert loaded == cfg
    assert loaded != Config()
    assert type(loaded.optim.betas[0]) is float and type(loaded.train.steps) is int


def test_precedence_defaults_then_yaml_then_flags(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("loss:\n  margin_lambda: 0.1\n  temperature: 0.05\n"
                 "train:\n  steps: 7\n  batch_size: 4\naveraging:\n  beta: 0.7\n")
    args = build_parser().parse_args(["train", "--config", str(y), "--steps", "9", "--averaging", "ema",
                                      "--temperature", "0.02", "--holdout-domain", "a", "--holdout-domain", "b"])
    cfg, _ = config_from_args(args)
    # flag over YAML
    assert cfg.train.steps == 9 and cfg.loss.temperature == 0.02
    # YAML over default
    assert cfg.loss.margin_lambda == 0.1 and cfg.train.batch_size == 4 and cfg.averaging.beta == 0.7
    # flag over default
    assert cfg.averaging.name == "ema" and cfg.data.holdout_domains == ["a", "b"]
    # untouched default
    assert cfg.optim.lr == 5e-6 and cfg.loss.name == "mms"


def test_flags_without_yaml_and_none_values():
    args = build_parser().parse_args(["train", "--grad-clip", "none", "--shots", "4", "--no-zeroshot",
                                      "--adam-betas", "0.5", "0.6"])
    cfg, _ = config_from_args(args)
    assert cfg.optim.grad_clip is None and cfg.data.shots == 4 and cfg.eval.zeroshot is False
    assert cfg.optim.betas == [0.5, 0.6]
    assert cfg.train.steps == 5000


# ------------------------------------------------------------------ validation


def _field(section: str, name: str):
    for sec, _, f in iter_fields(Config):
        if sec == section and f.name == name:
            return f
    raise KeyError((section, name))


BAD_VALUES = [
    ("model", "arch", ""),
    ("model", "trainable", "some"),
    ("model", "trainable", "last:0"),
    ("model", "trainable", "last:x"),
    ("model", "templates", []),
    ("model", "templates", ["a photo"]),
    ("model", "templates", ["{}-{}"]),
    ("model", "templates", ["a {0} {}"]),
    ("model", "templates", ["a {}", "{name}"]),
    ("train", "seed", 1180591620717411303424),
    ("train", "seed", -1),
    ("data", "split_seed", 2**63),
    ("train", "norm_layers", "fixed"),
    ("data", "val_fraction", 1.0),
    ("data", "val_fraction", -0.1),
    ("data", "val_fraction", float("nan")),
    ("data", "shots", 0),
    ("data", "workers", -1),
    ("data", "bad_images", "ignore"),
    ("loss", "name", "hinge"),
    ("loss", "margin_lambda", -0.1),
    ("loss", "margin_lambda", 10.5),
    ("loss", "margin_lambda", float("inf")),
    ("loss", "temperature", 0.0),
    ("loss", "temperature", 1e-5),
    ("loss", "temperature", 11.0),
    ("model", "head_init", "xavier"),
    ("averaging", "name", "median"),
    ("averaging", "beta", 0.0),
    ("averaging", "beta", -1.0),
    ("averaging", "beta", 101.0),
    ("averaging", "ema_decay", 0.0),
    ("averaging", "ema_decay", 1.0),
    ("averaging", "every", 0),
    ("optim", "lr", 0.0),
    ("optim", "lr", 2.0),
    ("optim", "lr", float("nan")),
    ("optim", "weight_decay", -0.1),
    ("optim", "weight_decay", 11.0),
    ("optim", "betas", [0.9]),
    ("optim", "betas", [0.9, 1.0]),
    ("optim", "eps", 0.0),
    ("optim", "warmup_steps", -1),
    ("optim", "warmup_steps", 5000),  # not fewer than --steps
    ("optim", "min_lr_ratio", -0.1),
    ("optim", "min_lr_ratio", 1.5),
    ("optim", "grad_clip", 0.0),
    ("optim", "grad_clip", -1.0),
    ("train", "steps", 0),
    ("train", "batch_size", 0),
    ("train", "batch_size", 65537),
    ("compute", "precision", "fp8"),
    ("compute", "device", "gpu"),
    ("compute", "device", "cuda:x"),
    ("train", "log_every", 0),
    ("train", "eval_every", -1),
    ("train", "checkpoint_every", -1),
    ("train", "keep_checkpoints", 0),
    ("eval", "batch_size", 0),
]


@pytest.mark.parametrize("section,name,value", BAD_VALUES,
                         ids=[f"{s}.{n}={v!r}" for s, n, v in BAD_VALUES])
def test_every_range_error_names_the_option(tmp_path, section, name, value):
    cfg = Config()
    cfg.data.root = str(tmp_path)
    validate(cfg)  # the defaults are valid
    setattr(getattr(cfg, section), name, value)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    assert msg.startswith(f"--{flag_name(_field(section, name))}: ")
    assert "out of range; allowed:" in msg and len(msg.splitlines()) == 1


def test_steps_are_not_checked_outside_training(tmp_path):
    cfg = Config()
    cfg.data.root = str(tmp_path)
    cfg.train.steps = 0
    validate(cfg, training=False)
    with pytest.raises(ConfigError, match="^--steps: "):
        validate(cfg)


def test_missing_root_and_class_names_file(tmp_path):
    cfg = Config()
    with pytest.raises(ConfigError, match="^--root: no dataset given"):
        validate(cfg)
    cfg.data.root = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match=f"^--root: folder not found: {tmp_path / 'nope'}"):
        validate(cfg)
    cfg.data.root = str(tmp_path)
    cfg.data.class_names = str(tmp_path / "names.txt")
    with pytest.raises(ConfigError, match="^--class-names: file not found: .*names.txt"):
        validate(cfg)


# ------------------------------------------------------------ unknown keys, types


def test_unknown_section_is_named():
    with pytest.raises(ConfigError, match=r"unknown section 'optimizer' \(known: model, data, tuning, loss"):
        from_dict({"optimizer": {"lr": 1e-5}})


def test_unknown_key_is_named_with_its_section():
    with pytest.raises(ConfigError, match=r"unknown option loss\.'lamda' \(known: name, margin_lambda"):
        from_dict({"loss": {"lamda": 0.1}})


def test_yaml_file_errors_name_the_file(tmp_path):
    y = tmp_path / "bad.yaml"
    y.write_text("train:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match=f"^{y}: unknown option train.'stepz'"):
        load_yaml(y)
    y.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=f"^--config: {y} is not valid YAML"):
        load_yaml(y)
    y.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=f"^{y}: expected a mapping of sections"):
        load_yaml(y)
    y.write_text("train: 5\n")
    with pytest.raises(ConfigError, match=f"^{y}: section 'train' must be a mapping"):
        load_yaml(y)
    with pytest.raises(ConfigError, match="^--config: file not found"):
        load_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize("section,key,value,expected", [
    ("optim", "lr", "fast", "--lr (optim.lr): expected float, got 'fast'"),
    ("train", "steps", "many", "--steps (train.steps): expected int, got 'many'"),
    ("train", "steps", 2.5, "--steps (train.steps): expected int, got 2.5"),
    ("train", "steps", True, "--steps (train.steps): expected int, got True"),
    ("eval", "zeroshot", "maybe", "--zeroshot (eval.zeroshot): expected bool, got 'maybe'"),
    ("optim", "betas", ["a", "b"], "--adam-betas (optim.betas): expected a list of float"),
    ("train", "steps", None, "--steps (train.steps): a value is required"),
])
def test_type_errors_name_the_option(section, key, value, expected):
    with pytest.raises(ConfigError) as err:
        from_dict({section: {key: value}})
    assert expected in str(err.value)


def test_yaml_strings_are_coerced_like_flags():
    cfg = from_dict({"train": {"steps": "300"}, "optim": {"grad_clip": "none", "lr": "1e-5"},
                     "eval": {"zeroshot": "off"}, "model": {"templates": "a {}."}})
    assert cfg.train.steps == 300 and cfg.optim.grad_clip is None and cfg.optim.lr == 1e-5
    assert cfg.eval.zeroshot is False and cfg.model.templates == ["a {}."]


def test_docs_table_lists_every_option_once():
    doc = options_markdown()
    for sec, _, f in iter_fields(Config):
        assert doc.count(f"| `{sec}.{f.name}` | `--{flag_name(f)}` |") == 1
    assert [f"## `{s}`" in doc for s in SECTIONS] == [True] * len(SECTIONS)
    flags = [flag_name(f) for _, _, f in iter_fields(Config)]
    assert len(flags) == len(set(flags)), "two options share a CLI flag"
    assert len(dataclasses.fields(Config)) == len(SECTIONS)


def test_integer_bounds_are_written_in_full():
    """--seed's bound is 2**63 - 1 as a user types it, not 9.22337e+18; small floats stay short."""
    from clipood.config.fields import Range
    assert Range(0, 2**63 - 1, name="seed").text() == "0 <= seed <= 9223372036854775807"
    assert Range(0.0, 1.0, lo_open=True, name="lr").text() == "0 < lr <= 1"
    assert Range(1e-5, None).text() == "x >= 1e-05"


def test_a_profile_sits_under_the_config_file_and_the_flags(tmp_path):
    """--profile official sets the official code's choices; a YAML file and flags still override any of them."""
    y = tmp_path / "run.yaml"
    y.write_text("profile: official\noptim: {lr: 1.0e-5}\ntrain: {sampling: epochs}\n")
    args = build_parser().parse_args(["train", "--config", str(y), "--master-weights", "fp32"])
    cfg, given = config_from_args(args)
    assert cfg.averaging.precision == "fp16" and cfg.optim.grad_clip is None and cfg.model.interpolation == "bilinear"
    assert cfg.data.protocol == "official" and cfg.data.shot_seed == 0  # a folder is domain-split data
    assert cfg.train.master_weights == "fp32" and cfg.train.sampling == "epochs" and cfg.optim.lr == 1e-5
    assert "train.master_weights" in given and "data.protocol" not in given  # a profile is not 'given'
    default, _ = config_from_args(build_parser().parse_args(["train"]))
    assert dataclasses.asdict(default) == dataclasses.asdict(Config())  # the clipood profile is the defaults


def test_the_official_profile_leaves_the_splits_of_datasets_that_have_their_own():
    cfg, _ = config_from_args(build_parser().parse_args(["train", "--profile", "official", "--dataset", "eurosat"]))
    assert cfg.data.protocol == "clipood" and cfg.train.sampling == "epochs"  # CoOp's files, shuffled epochs
    assert cfg.train.master_weights == "fp16" and cfg.data.shot_seed == 0


def test_profile_of_names_the_profile_and_what_changed():
    from clipood.config import apply_profile, profile_of
    cfg = apply_profile("official", [({"optim": {"grad_clip": 1.0}}, "test")], lambda c: True)
    assert profile_of(cfg, True) == {"name": "official", "changed": {"optim.grad_clip": 1.0}}
    assert profile_of(Config(), True) == {"name": "clipood", "changed": {}}


def test_an_unknown_profile_is_one_line(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("profile: paper\n")
    with pytest.raises(Exception, match="unknown profile 'paper'; known: clipood, official"):
        config_from_args(build_parser().parse_args(["train", "--config", str(y)]))
    from clipood.sweep import spec_from_dict
    with pytest.raises(ConfigError, match="unknown profile 'paper'"):
        spec_from_dict({"methods": ["clipood"], "datasets": ["x"], "profile": "paper"})


# ------------------------------------------------------------------ issue 23


def test_yaml_merge_keys_merge_and_own_keys_override_case10(tmp_path):
    from clipood.config import parse_yaml
    y = tmp_path / "merge.yaml"
    y.write_text("optim: &base\n  lr: 1.0e-4\n  weight_decay: 0.05\nloss:\n  name: mms\n"
                 "averaging:\n  <<: {name: ema, ema_decay: 0.99}\n  ema_decay: 0.9\n")
    cfg = load_yaml(y)
    assert cfg.averaging.name == "ema" and cfg.averaging.ema_decay == 0.9 and cfg.optim.lr == 1e-4
    y.write_text("a: &d {x: 1, y: 2}\nb:\n  <<: *d\n  y: 3\n")
    assert parse_yaml(y) == {"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 3}}
    y.write_text("b:\n  <<: {x: 1}\n  y: 3\n  y: 4\n")  # a key given twice in the mapping itself: still refused
    with pytest.raises(ConfigError, match="key 'y' is given twice"):
        parse_yaml(y)


def _laughs(levels: int) -> str:
    """A 'billion laughs' in model.templates: each level a list of nine aliases of the one before."""
    lines = ["model:", "  templates:", "    - &a0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"    - &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_yaml_bombs_are_refused_up_front_with_a_bound_case7c(tmp_path):
    import time
    y = tmp_path / "bomb.yaml"
    t0 = time.time()
    y.write_text(_laughs(9))  # 9**9 values once expanded
    with pytest.raises(ConfigError, match=r"more than 100,000 values once its aliases \(\*name\) are expanded"):
        load_yaml(y)
    y.write_text("model:\n  templates: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError, match="nests mappings or lists more than 64 deep"):
        load_yaml(y)
    y.write_bytes(b"# padding\n" * 110_000 + b"train: {steps: 1}\n")  # 1.05 MiB
    with pytest.raises(ConfigError, match=r"is 1.0 MiB; a config is at most 1 MiB of YAML"):
        load_yaml(y)
    assert time.time() - t0 < 30, "refused up front, not after expanding"
    y.write_text(_laughs(3))  # a few aliases, well inside the bound, are fine (then the usual checks)
    with pytest.raises(ConfigError, match="--template"):
        validate(load_yaml(y))


def test_list_items_must_be_scalars_and_odd_template_strings_are_one_line_case7c(tmp_path):
    """Variants: a nested list became the string "['a', 'b']"; a long or NUL template crashed the file check."""
    y = tmp_path / "c.yaml"
    y.write_text("model:\n  templates: [['a photo of a {}.', b]]\n")
    with pytest.raises(ConfigError, match=r"--template \(model.templates\): expected a list of str"):
        load_yaml(y)
    y.write_text("data:\n  holdout_domains: [no]\n")  # YAML 1.1 reads 'no' as false: not the domain 'False'
    with pytest.raises(ConfigError, match=r"--holdout-domain \(data.holdout_domains\): expected a list of str"):
        load_yaml(y)
    for t in ("x" * 5000, "a\0b"):
        cfg = Config()
        cfg.model.templates, cfg.data.root = [t], str(tmp_path)
        with pytest.raises(ConfigError, match="--template"):
            validate(cfg)


def test_options_that_moved_section_are_read_in_their_new_place(tmp_path, capsys):
    """device, precision and channels_last are the compute section's (eval uses them too), head_init the model's:
    a config file or a run's record written before reads them where they are now."""
    from clipood.config import changed_options, config_record, load_yaml
    y = tmp_path / "old.yaml"
    y.write_text("train: {device: cpu, precision: fp32, channels_last: 'off', steps: 7}\nloss: {head_init: random}\n")
    cfg = load_yaml(y)
    assert (cfg.compute.device, cfg.compute.precision, cfg.compute.channels_last) == ("cpu", "fp32", "off")
    assert (cfg.model.head_init, cfg.train.steps) == ("random", 7)
    assert "read loss.head_init as model.head_init, train.device as compute.device" in capsys.readouterr().err
    record = config_record(cfg)
    old = {k.replace("compute.", "train.").replace("model.head_init", "loss.head_init"): v
           for k, v in record["options"].items()}
    assert changed_options({"options": old}, cfg) == []
