"""The settings overrides go through the engine's one definition (latebird::Overrides): an
unknown keyword is refused with the accepted names, values are checked by the engine and
named, the `settings` dict keeps its shape, and `pool_factor > 1` with queries is the same
InvalidInputError as in every front end."""

from __future__ import annotations

import latebird
import numpy as np
import pytest
from latebird import _latebird

SETTINGS = {
    "query_prefix": str,
    "document_prefix": str,
    "query_length": int,
    "document_length": int,
    "do_query_expansion": bool,
    "attend_to_expansion_tokens": bool,
    "skiplist_words": list,
}
ACCEPTED = (
    "query_length, document_length, query_prefix, document_prefix, do_query_expansion, "
    "attend_to_expansion_tokens, skiplist_words, batch_size, precision, device"
)


def _invalid(call, *needles: str) -> str:
    with pytest.raises(latebird.InvalidInputError) as info:
        call()
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    return message


def test_settings_dict_keeps_its_shape(minilm_dir):
    model = latebird.ColBERT(minilm_dir, query_length=16, skiplist_words=["the"])
    settings = model._model.settings
    assert set(settings) == set(SETTINGS)
    for key, kind in SETTINGS.items():
        assert type(settings[key]) is kind, (key, settings[key])
    assert settings["query_length"] == 16
    assert settings["skiplist_words"] == ["the"]
    assert settings["query_prefix"] == "[Q] "
    assert model.query_length == 16
    assert model.skiplist_words == ["the"]


def test_unknown_keyword_lists_the_accepted_ones(minilm_dir):
    _invalid(
        lambda: _latebird.Model(str(minilm_dir), query_lenght=4),
        "`query_lenght`",
        "unknown setting",
        ACCEPTED,
    )
    # The Python wrapper has PyLate's explicit signature: Python refuses the keyword itself.
    with pytest.raises(TypeError, match="query_lenght"):
        latebird.ColBERT(minilm_dir, query_lenght=4)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value", "needles"),
    [
        ("query_prefix", 3, ["is 3", "expected a string"]),
        ("document_prefix", ["a"], ["is an array", "expected a string"]),
        ("do_query_expansion", 1, ["is 1", "expected true or false"]),
        ("attend_to_expansion_tokens", "yes", ['is the string "yes"', "expected true or false"]),
        ("skiplist_words", "the", ['is the string "the"', "expected a list of strings"]),
        ("skiplist_words", ["the", 7], ["has item 1 7", "expected a list of strings"]),
        ("batch_size", 0, ["is 0", "expected an integer from 1 to"]),
        ("query_length", 2.0, ["is 2.0, a floating-point number", "expected an integer"]),
        ("query_length", float("nan"), ["not a finite number"]),
        ("document_length", 10**400, ["far out of range"]),
        ("query_length", {}, ["is an object"]),
        ("query_length", object(), ["(type object)"]),
        ("precision", "int4", ['is the string "int4"', "expected one of float32, bfloat16, int8"]),
        ("precision", 8, ["is 8", "expected a string"]),
    ],
)
def test_values_are_checked_by_the_engine(minilm_dir, name, value, needles):
    _invalid(lambda: _latebird.Model(str(minilm_dir), **{name: value}), f"`{name}`", *needles)


def test_numpy_scalars_and_tuples_are_accepted(minilm_dir):
    model = _latebird.Model(
        str(minilm_dir),
        query_length=np.int64(12),
        do_query_expansion=np.bool_(True),
        skiplist_words=("the", "a"),
        batch_size=np.uint8(3),
    )
    assert model.settings["query_length"] == 12
    assert model.settings["do_query_expansion"] is True
    assert model.settings["skiplist_words"] == ["the", "a"]


def test_none_keeps_the_folders_values(minilm_dir):
    plain = _latebird.Model(str(minilm_dir))
    nones = _latebird.Model(str(minilm_dir), query_length=None, skiplist_words=None)
    assert plain.settings == nones.settings


def test_pool_factor_with_queries_is_refused_by_the_engine(minilm):
    message = _invalid(
        lambda: minilm.encode(["a query"], is_query=True, pool_factor=2),
        "`pool_factor`",
        "documents only",
        "expected 1 for queries",
    )
    # The same text as the JavaScript one (tests/js/settings.test.mjs), with Python's name.
    assert message == (
        "invalid argument `pool_factor`: is 2 for queries; pooling applies to documents only "
        "and queries are never pooled (PyLate ignores it for queries); expected 1 for queries"
    )
    # The native method says the same: the rule lives in the engine, not in the wrapper.
    assert message == _invalid(lambda: minilm._model.encode(["a query"], True, 4, 2))
    assert minilm.encode("a query", is_query=True, pool_factor=1).shape[0] == 32
    text = "a document with several words to pool"
    pooled = minilm.encode(text, is_query=False, pool_factor=2)
    assert pooled.shape[0] < minilm.encode(text, is_query=False).shape[0]
