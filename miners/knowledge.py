"""Knowledge-source labels: where the pieces of a task's target can be found.

A target's *pieces* are its identifiers (Python's own names left out: keywords, builtins,
the attributes of builtin types and of the standard modules tests use most: they are the
language, not the repository), the texts of its string literals and its numbers of two
digits or more (a single digit is everywhere).

- ``prefix``: every piece occurs in the prompt's prefix (or the target has none);
- ``repository``: some piece is absent from the prefix, and every such piece occurs in
  the repository's non-test files (the context table);
- ``none``: some piece occurs nowhere: the value must be computed.

Identifiers and numbers match whole tokens; a string literal's text matches as a
substring (``'payload'`` is known when ``payload`` appears anywhere). Repository adaptation
can help through the ``repository`` slice only (and through style); scores are broken
down by label.

The repository side is the context table, i.e. the files at the static snapshot. An
evolution task at an earlier commit is labelled against the same files: a name added to
the repository after that commit counts as known (documented in the data card).
"""
from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass

LABELS = ("prefix", "repository", "none")

_STRING = re.compile(r"""(?:\b[rRbBuUfF]{1,2})?(?:'((?:\\.|[^'\\\n])*)'|"((?:\\.|[^"\\\n])*)")""")
_NUMBER = re.compile(r"(?<![\w.])(?:0[xXoObB][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?"
                     r"|\.\d+(?:[eE][+-]?\d+)?)[jJ]?(?![\w.])")
_IDENT = re.compile(r"[^\W\d]\w*")
_WORD = re.compile(r"\w+")
def _language() -> frozenset[str]:
    """Names a model knows from Python itself: keywords, builtins, the attributes of the
    builtin types and exceptions, and of the standard modules tests use most (so that
    ``pickle.loads`` or ``excinfo.value.args`` is not taken for repository knowledge)."""
    import collections
    import copy
    import datetime
    import functools
    import io
    import itertools
    import json
    import math
    import os
    import pathlib
    import pickle
    import re as re_module
    import sys
    import time
    import typing
    names = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | {"self", "cls"}
    for obj in (str, bytes, int, float, list, dict, set, tuple, object, BaseException, type,
                collections, copy, datetime, datetime.datetime, functools, io, itertools, json,
                math, os, os.path, pathlib, pathlib.Path, pickle, re_module, sys, time, typing):
        names |= set(dir(obj))
    return frozenset(names)


_LANGUAGE = _language()
# Numbers of one digit are everywhere: they are not evidence of where a value comes from.
_TRIVIAL_NUMBER = re.compile(r"^-?\d$")


@dataclass(frozen=True)
class Pieces:
    words: frozenset[str]      # identifiers and numbers: matched as whole tokens
    texts: frozenset[str]      # string literals' contents: matched as substrings


def pieces(target: str) -> Pieces:
    """The identifiers, numbers and string texts a target is made of."""
    texts = set()
    rest = []
    last = 0
    for m in _STRING.finditer(target):
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        if inner:
            texts.add(inner)
        rest.append(target[last:m.start()])
        last = m.end()
    rest.append(target[last:])
    code = " ".join(rest)
    words = {n for n in _NUMBER.findall(code) if not _TRIVIAL_NUMBER.match(n)}
    words |= {w for w in _IDENT.findall(_NUMBER.sub(" ", code)) if w not in _LANGUAGE}
    return Pieces(frozenset(words), frozenset(texts))


class TextIndex:
    """Whole-token and substring lookups over one text (a prefix, or a repository)."""

    def __init__(self, text: str):
        self.text = text
        self.words = set(_WORD.findall(text)) | set(_NUMBER.findall(text))

    def has_word(self, word: str) -> bool:
        return word in self.words

    def has_text(self, text: str) -> bool:
        return text in self.text


def label(target: str, prefix: str, repository: TextIndex | None) -> str:
    """``prefix``, ``repository`` or ``none`` (see the module)."""
    p = pieces(target)
    if not p.words and not p.texts:
        return "prefix"
    own = TextIndex(prefix)
    missing_words = [w for w in p.words if not own.has_word(w)]
    missing_texts = [t for t in p.texts if not own.has_text(t)]
    if not missing_words and not missing_texts:
        return "prefix"
    if repository is not None and all(repository.has_word(w) for w in missing_words) \
            and all(repository.has_text(t) for t in missing_texts):
        return "repository"
    return "none"


def repository_index(files: list[str]) -> TextIndex:
    """The index of a repository's non-test files (their contents, joined)."""
    return TextIndex("\n\0\n".join(files))
