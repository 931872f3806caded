"""The data dictionary: the one declaration of the study's clinical variables and its steps.

``default_dictionary()`` is the shipped one (``liver.yaml``: the paper's liver labs, steps m1..m5);
``load_dictionary(path)`` reads a user's. A leaf: imports nothing else of liver_mm.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from liver_mm.dictionary.load import DictionaryError, load_dictionary, parse_dictionary
from liver_mm.dictionary.model import (
    CATEGORY_KINDS,
    KINDS,
    Dictionary,
    Step,
    Variable,
    norm_unit,
    variable_from_canonical,
)

DEFAULT_NAME = "liver.yaml"

__all__ = ["CATEGORY_KINDS", "KINDS", "Dictionary", "DictionaryError", "Step", "Variable", "default_dictionary",
           "default_path", "load_dictionary", "norm_unit", "parse_dictionary", "resolve",
           "variable_from_canonical"]


def default_path() -> str:
    """The shipped default dictionary's file."""
    return str(resources.files(__name__) / DEFAULT_NAME)


@cache
def default_dictionary() -> Dictionary:
    """The shipped default dictionary (read once)."""
    return load_dictionary(default_path())


def resolve(path: str | None) -> Dictionary:
    """The dictionary at ``path``, or the shipped default for None / empty."""
    return default_dictionary() if not path else load_dictionary(path)
