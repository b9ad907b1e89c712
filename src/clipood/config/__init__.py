"""One typed configuration tree, the single source of defaults, choices and ranges.

``tree``: the fine-tuning tree (``Config``); ``sections``: the sections pretraining shares;
``fields``: the option metadata everything reads (help, flag, choices, range, scope);
``io``: dicts, YAML and derived key sets; ``validation``: the checks; ``docs``: the tables.
"""

from .docs import allowed, applies, options_markdown
from .fields import Range, again, check_value, coerce, default_of, field_type, flag_name, iter_fields, opt
from .io import (
                 changed_options,
                 config_record,
                 expand_home,
                 flatten,
                 from_dict,
                 given_keys,
                 irrelevant_keys,
                 load_yaml,
                 moved_keys,
                 parse_yaml,
                 runtime_keys,
                 save_yaml,
                 to_dict,
                 variant_keys,
                 with_absolute_paths,
)
from .profiles import DEFAULT_PROFILE, PROFILES, Profile, apply_profile, profile_of, profile_values
from .sections import ALL_COMMANDS, MAX_SEED, PRECISIONS, DeviceConfig, LoopConfig, OptimConfig, RunConfig
from .tree import (
                 SECTION_SCOPE,
                 SECTIONS,
                 AveragingConfig,
                 ComputeConfig,
                 Config,
                 DataConfig,
                 EvalConfig,
                 LossConfig,
                 ModelConfig,
                 TrainConfig,
)
from .validation import check_device, check_fields, check_name, check_output_dir, check_run, check_templates, validate

__all__ = ["ALL_COMMANDS", "AveragingConfig", "ComputeConfig", "Config", "DEFAULT_PROFILE", "DataConfig",
           "DeviceConfig", "EvalConfig", "LoopConfig", "LossConfig", "MAX_SEED", "ModelConfig", "OptimConfig",
           "PRECISIONS", "PROFILES", "Profile", "Range", "RunConfig", "SECTIONS", "SECTION_SCOPE", "TrainConfig",
           "again", "allowed", "applies", "apply_profile", "changed_options", "check_device", "check_fields",
           "check_name", "check_output_dir", "check_run", "check_templates", "check_value", "coerce", "config_record",
           "default_of", "expand_home", "field_type", "flag_name", "flatten", "from_dict", "given_keys",
           "irrelevant_keys", "iter_fields", "load_yaml", "moved_keys", "opt", "options_markdown", "parse_yaml",
           "profile_of", "profile_values", "runtime_keys", "save_yaml", "to_dict", "validate", "variant_keys",
           "with_absolute_paths"]
