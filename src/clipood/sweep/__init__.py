"""Sweeps: methods x datasets x held-out domains x hyper-parameter variants x seeds.

A sweep is a YAML spec (or flags of ``clipood sweep``) expanded into a deterministic list
of runs, each a normal run directory under ``output_dir`` named after what it is
(``<dataset>-<method>-<held-out>[-b2n][-<variant>]-seed<S>``). Rerunning the same sweep
skips finished runs (``results.json`` present) and resumes interrupted ones from their
last checkpoint, so a pre-empted sweep continues where it stopped. Runs execute in this
process one after another, or ``--jobs N`` at a time, each in its own
``python -m clipood.cli`` process (logs in ``output_dir/.sweep/logs``).

Spec keys (all optional except methods and datasets)::

    name: table1-pacs
    output_dir: runs/table1
    methods: [zeroshot, erm-linear, finetune, clipood]      # see clipood.methods
    datasets:                                               # a root path, or a mapping
      - {name: PACS, root: data/PACS, overrides: {optim: {lr: 5.0e-6}}}
      - {name: PACS, dataset: pacs, root: data}             # a registered dataset (--dataset)
    holdout: all          # every domain in turn; [a, b]: each in turn; [[a, b]]: both at once; none
    seeds: [0, 1, 2]      # or a count: 3
    base_to_new: false
    overrides: {train: {steps: 5000}}                       # config sections, for every run
    method_overrides: {erm-linear: {optim: {lr: 1.0e-5}}}
    grid: {lambda: [0.1, 0.3], beta: [0.5, 1.0]}            # variants; option keys or flag names
    wise_ft_alphas: [0.0, 0.25, 0.5, 0.75, 1.0]
    wise_ft_base: finetune    # WiSE-FT interpolates zero-shot with this method's runs

Model selection among variants (DomainBed's training-domain validation, or the oracle)
happens in the report (``clipood report``), which states which one each table uses.
"""

from .cli import add_arguments, main, spec_from_args
from .plan import SIDECAR, PlannedRun, config_differences, plan, plan_table, run_name, variants
from .runner import STATE_DIR, SweepOutcome, execute_in_process, run_sweep, subprocess_command
from .spec import DATASET_KEYS, SPEC_KEYS, DatasetSpec, SweepSpec, load_spec, option_key, spec_from_dict, spec_to_dict

__all__ = ["DATASET_KEYS", "DatasetSpec", "PlannedRun", "SIDECAR", "SPEC_KEYS", "STATE_DIR", "SweepOutcome",
           "SweepSpec", "add_arguments", "config_differences", "execute_in_process", "load_spec", "main",
           "option_key", "plan", "plan_table", "run_name", "run_sweep", "spec_from_args", "spec_from_dict",
           "spec_to_dict", "subprocess_command", "variants"]
