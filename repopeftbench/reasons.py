"""Every counter a build reports: filter reasons, file skips and replay events.

One enumeration, used by the static, evolution and context miners when they count and
by the data card when it explains the counts. The same filter has the same name on
every track; ``build_report.json`` keeps the counts per track.
"""
from __future__ import annotations

from enum import Enum


class Reason(str, Enum):
    """A counter name (its value) with the sentence that explains it (``description``)."""

    description: str

    def __new__(cls, value: str, description: str) -> "Reason":
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.description = description
        return obj

    __str__ = str.__str__
    __format__ = str.__format__

    # --- task filters (static and evolution), in the order they are checked
    MODULE_LEVEL = ("module_level", "assertion outside any function (module level)")
    EMPTY_TARGET = ("empty_target", "target empty or made only of punctuation")
    ONE_CHAR_TARGET = ("one_char_target", "target of one character")
    LEADING_COMMA = ("leading_comma", "target starting with a comma")
    TARGET_TOO_LONG = ("target_too_long", "target longer than max_target_chars")
    PREFIX_PAREN_COMMA = ("prefix_paren_comma", "prefix containing '(,'")
    DUPLICATE = ("duplicate", "same target already taken from the same file (static) or "
                              "the same commit and file (evolution)")
    # --- static caps
    CAP_FUNCTION = ("cap_function", "over the per-test-function cap")
    CAP_FILE = ("cap_file", "over the per-test-file cap")
    CAP_REPO = ("cap_repo", "over the per-repository cap")
    # --- evolution caps
    CAP_COMMIT = ("cap_commit", "over the per-commit cap of evaluation splits")
    TRAIN_SHORT_TARGET = ("train_short_target",
                          "training split: target shorter than train_min_target_chars")
    TRAIN_CAP_FILE = ("train_cap_file", "training split: over the per-test-file cap of a commit")
    # --- files that are not read (test files; context files for the context table)
    FILE_SYMLINK = ("file_symlink", "symbolic link, never followed")
    FILE_TOO_LARGE = ("file_too_large", "file larger than max_file_bytes")
    FILE_MISSING_OBJECT = ("file_missing_object", "blob missing from the repository "
                                                  "(damaged or partial clone)")
    FILE_BINARY = ("file_binary", "binary file (contains NUL bytes)")
    FILE_NON_UTF8 = ("file_non_utf8", "not valid UTF-8")
    FILE_SYNTAX_ERROR = ("file_syntax_error", "does not parse as Python 3 (syntax error or "
                                              "Python 2 statements)")
    FILE_SUBMODULE = ("file_submodule", "a git submodule, not a file")
    # --- evolution replay events (counted, not filtered)
    MERGE_COMMITS = ("merge_commits", "merge commits replayed through their first parent")
    ROOT_COMMITS = ("root_commits", "commits without a parent")
    TIMESTAMP_OUT_OF_RANGE = ("timestamp_out_of_range", "commits whose committer or author "
                              "time is outside years 1-9999 (stored as null)")
    TIMESTAMP_OUT_OF_ORDER = ("timestamp_out_of_order", "commits older than their first-parent "
                                                        "predecessor (rebased or clock skew)")
    TEST_FILE_DELETED = ("test_file_deleted", "test files deleted")
    TEST_FILE_RENAMED = ("test_file_renamed", "test files renamed (their assertions followed)")
    TEST_FILE_RENAMED_AWAY = ("test_file_renamed_away", "test files renamed to a non-test path")
    EVENTS_UNKNOWN_BEFORE = ("events_unknown_before", "changed test files whose previous version "
                                                      "never parsed, so no event can be told "
                                                      "(no tasks taken)")
    DIFF_TRUNCATED = ("diff_truncated", "production-code diffs cut at max_diff_bytes")


def describe(name: str) -> str:
    """The explanation of a counter name (unknown names are returned as they are)."""
    try:
        return Reason(name).description
    except ValueError:
        return name
