"""The data dictionary: the one declaration of the study's clinical variables and its steps.

``default_dictionary()`` is the shipped one (``liver.yaml``: the paper's liver labs, steps m1..m5);
``load_dictionary(path)`` reads a user's. A leaf: imports nothing else of liver_mm.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from liver_mm.dictionary.load import DictionaryError, load_dictionary, parse_dictionary
from liver_mm.dictionary.model import (
    CATEGORY_KINDS,
    KINDS,
    Dictionary,
    Step,
    Variable,
    close_match,
    norm_unit,
    variable_from_canonical,
)

DEFAULT_NAME = "liver.yaml"

__all__ = ["activate", "active", "CATEGORY_KINDS", "KINDS", "Dictionary", "DictionaryError", "Step", "Variable", "close_match", "default_dictionary",
           "default_path", "dictionary_hash", "dictionary_key", "load_dictionary", "norm_unit", "parse_dictionary", "resolve",
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


def dictionary_hash(cfg: Mapping[str, Any]) -> str:
    """The content hash (:meth:`Dictionary.content_hash`) of a config's ``dictionary`` (None: the shipped one)."""
    return resolve(cfg.get("dictionary")).content_hash()


def dictionary_key(cfg: Mapping[str, Any]) -> dict[str, str]:
    """What a config's dictionary adds to the study and arm keys: ``{"dictionary": hash}``, or nothing for the
    shipped dictionary's content (the keys of studies made before the dictionary stay)."""
    h = dictionary_hash(cfg)
    return {} if h == default_dictionary().content_hash() else {"dictionary": h}


_active: list[Dictionary] = []


def activate(dictionary: Dictionary | str | None) -> Dictionary:
    """Make ``dictionary`` (a :class:`Dictionary`, a file, or None = the shipped default) the one this process
    reads tables with (:func:`active`): set once by a command or training job from its ``dictionary``
    option."""
    d = dictionary if isinstance(dictionary, Dictionary) else resolve(dictionary)
    _active[:] = [d]
    return d


def active() -> Dictionary:
    """The dictionary set by :func:`activate`, else the shipped default."""
    return _active[0] if _active else default_dictionary()
