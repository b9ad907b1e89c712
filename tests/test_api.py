"""The public API: every name in ``clipood.__all__`` resolves to the object its module defines."""

from __future__ import annotations

import importlib

import clipood


def test_every_public_name_resolves_to_its_module_object():
    for name in clipood.__all__:
        if name == "__version__":
            continue
        value = getattr(clipood, name)
        module = importlib.import_module(f"clipood.{clipood._WHERE[name]}")
        assert value is getattr(module, name), name
    assert sorted(dir(clipood)) == sorted(clipood.__all__)


def test_the_commands_around_a_trained_model_are_public():
    from clipood.commands.hub import export_hf
    from clipood.commands.predict import predict
    from clipood.commands.wise_ft import wise_ft_models
    assert (clipood.predict, clipood.wise_ft_models, clipood.export_hf) == (predict, wise_ft_models, export_hf)
