"""Scoring rules (SPEC section 8): lenient exact match two ways, strict match, edit similarity.

``paper_em`` follows the published scorer step by step, quirks included, so figures
compare with the publication. ``em`` (the headline) runs the same steps aware of string
literals and brackets and normalises both sides alike. Each step is a function with its
own regression test.
"""
from __future__ import annotations

import difflib
import re

FIM_TOKENS = ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
              "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<|endoftext|>",
              "<|file_sep|>", "<|repo_name|>", "<file_sep>", "<reponame>")
_WS = re.compile(r"\s+")


def drop_fim(text: str) -> str:
    for tok in FIM_TOKENS:
        text = text.replace(tok, "")
    return text


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def clean_prediction(raw: str, reference: str | None = None) -> str:
    """What the model predicted for the target: FIM tokens dropped, first line only
    (when the reference is one line, or always when no reference is given)."""
    text = drop_fim(raw)
    if reference is None or "\n" not in reference:
        text = first_line(text)
    return text


# --------------------------------------------------------------------- published scorer

# The published scorer removes exactly these three; other special tokens stay (and fail).
PAPER_FIM_TOKENS = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")


def paper_drop_fim(text: str) -> str:
    """Step 1: remove the three FIM tokens, then strip surrounding whitespace."""
    for tok in PAPER_FIM_TOKENS:
        text = text.replace(tok, "")
    return text.strip()


def paper_cut_comment(text: str) -> str:
    """Step 3: cut at the first ``#`` anywhere in the text (inside a string literal too, and
    every later line goes with it), then strip."""
    return text.split("#", 1)[0].strip()


def paper_clean(prediction: str, reference: str) -> tuple[str, str]:
    """Steps 1-4 of the published scorer: (cleaned prediction, comment-cut reference)."""
    pred = paper_drop_fim(prediction)
    if "\n" not in reference and "\n" in pred:
        pred = first_line(pred)
    pred, ref = paper_cut_comment(pred), paper_cut_comment(reference)
    if ref:
        if "," not in ref and "," in pred:
            pred = pred.split(",", 1)[0].strip()
        words = pred.split()
        if len(ref.split()) == 1 and len(words) > 1:
            pred = words[0]
    return pred.strip(), ref


def paper_normalise(text: str) -> str:
    """Step 5: strip, drop trailing ``:``/``,``/blanks, ``", "`` and then ``" ,"`` become
    ``","``, whitespace runs become one space."""
    text = text.strip().rstrip(":, \t")
    text = text.replace(", ", ",").replace(" ,", ",")
    return _WS.sub(" ", text)


def paper_em(prediction: str, reference: str) -> bool:
    """The published lenient exact match, literally (SPEC section 8), quirks included."""
    pred, ref = paper_clean(prediction, reference)
    return paper_normalise(pred) == paper_normalise(ref)


def paper_edit_sim(prediction: str, reference: str) -> float:
    """The published EditSim: difflib ratio of the cleaned prediction and the cut reference."""
    pred, ref = paper_clean(prediction, reference)
    return difflib.SequenceMatcher(None, pred, ref).ratio()


# --------------------------------------------------------------------- string-aware scorer

def _scan(text: str):
    """Yield (index, char, in_string, depth) for each character of Python-like text."""
    i, n, quote, depth = 0, len(text), "", 0
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and i + 1 < n:
                yield i, c, True, depth
                yield i + 1, text[i + 1], True, depth
                i += 2
                continue
            if text.startswith(quote, i):
                for k in range(len(quote)):
                    yield i + k, text[i + k], True, depth
                i += len(quote)
                quote = ""
                continue
            yield i, c, True, depth
            i += 1
            continue
        if c in "'\"":
            quote = c * 3 if text.startswith(c * 3, i) else c
            for k in range(len(quote)):
                yield i + k, text[i + k], True, depth
            i += len(quote)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        yield i, c, False, depth
        i += 1


def cut_comment(text: str) -> str:
    """Drop ``#`` comments outside string literals, line by line."""
    out, skipping = [], False
    for _, c, in_str, _ in _scan(text):
        if c == "\n":
            skipping = False
        elif c == "#" and not in_str:
            skipping = True
        if not skipping:
            out.append(c)
    return "".join(out)


def has_comma(text: str) -> bool:
    return any(c == "," and not s for _, c, s, _ in _scan(text))


def cut_at_comma(text: str) -> str:
    for i, c, in_str, _ in _scan(text):
        if c == "," and not in_str:
            return text[:i]
    return text


def top_level_tokens(text: str) -> list[str]:
    """Whitespace-separated tokens, not splitting inside strings or brackets."""
    tokens, cur = [], []
    for _, c, in_str, depth in _scan(text):
        if c.isspace() and not in_str and depth == 0:
            if cur:
                tokens.append("".join(cur))
                cur = []
        else:
            cur.append(c)
    if cur:
        tokens.append("".join(cur))
    return tokens


def normalise(text: str) -> str:
    """Outside strings: whitespace collapsed, none after commas; trailing ``:,`` dropped."""
    out: list[str] = []
    pending_space = False
    for _, c, in_str, _ in _scan(text.strip()):
        if not in_str and c.isspace():
            pending_space = True
            continue
        if pending_space and out and out[-1] != "," and not (not in_str and c == ","):
            out.append(" ")
        pending_space = False
        out.append(c)
    return "".join(out).rstrip(":, \t")


def em(prediction: str, reference: str) -> bool:
    """Lenient exact match, string- and bracket-aware and symmetric (the headline metric)."""
    pred = clean_prediction(prediction, reference)
    pred, ref = cut_comment(pred), cut_comment(reference)
    if not has_comma(ref):
        pred = cut_at_comma(pred)
    if len(top_level_tokens(ref)) == 1:
        tokens = top_level_tokens(pred)
        pred = tokens[0] if tokens else ""
    return normalise(pred) == normalise(ref)


def strict_em(prediction: str, reference: str) -> bool:
    """Exact match of the cleaned prediction up to whitespace runs."""
    pred = clean_prediction(prediction, reference)
    return _WS.sub(" ", pred.strip()) == _WS.sub(" ", reference.strip())


def edit_similarity(prediction: str, reference: str) -> float:
    return difflib.SequenceMatcher(None, clean_prediction(prediction, reference).strip(),
                                   reference.strip(), autojunk=False).ratio()


def codebleu(prediction: str, reference: str) -> float:
    """CodeBLEU (the ``codebleu`` package, Python grammar through tree-sitter-python) of the
    cleaned prediction against the reference, with its default weights (n-gram, weighted
    n-gram, syntax and data-flow match, a quarter each). On one-line targets it is a
    coarse signal: a target without data flow (most assertion targets) gets 0 on that
    quarter, and BLEU's n-grams of a few tokens are smoothed, so an exact match of
    ``x == compute(3)`` scores 0.76."""
    import logging

    from codebleu import calc_codebleu
    pred = clean_prediction(prediction, reference).strip()
    if not pred or not reference.strip():
        return float(pred == reference.strip())
    logging.disable(logging.WARNING)      # its warning of a missing data flow, per task
    try:
        return float(calc_codebleu([reference.strip()], [pred], lang="python")["codebleu"])
    except Exception:                      # a parse the package cannot handle scores 0
        return 0.0
    finally:
        logging.disable(logging.NOTSET)


def codebleu_available() -> bool:
    """Whether the optional ``codebleu`` package (``pip install --no-deps codebleu==0.7.0``:
    its pin of tree-sitter < 0.23 is stricter than it needs) imports."""
    import importlib.util
    return importlib.util.find_spec("codebleu") is not None


METRICS = {"em": em, "paper_em": paper_em, "strict_em": strict_em, "edit_sim": edit_similarity,
           "paper_edit_sim": paper_edit_sim}
# optional metrics, scored when their package is installed
EXTRA_METRICS = {"codebleu": (codebleu, codebleu_available)}


def score_one(prediction: str, reference: str, extras: tuple[str, ...] = ()) -> dict[str, float]:
    """Every metric of one prediction, and the optional ``extras`` (names of
    ``EXTRA_METRICS``)."""
    out = {name: float(fn(prediction, reference)) for name, fn in METRICS.items()}
    for name in extras:
        out[name] = float(EXTRA_METRICS[name][0](prediction, reference))
    return out


def available_extras() -> tuple[str, ...]:
    return tuple(name for name, (_, available) in EXTRA_METRICS.items() if available())
