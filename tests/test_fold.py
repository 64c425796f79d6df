"""Regressions in folding found by the semantics suite and by review."""

from __future__ import annotations

import pytest

from monitor.pipeline.fold import FoldedText, fold_words


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("ガザ", " ガ ザ "),
        ("カ\u3099サ\u3099", " ガ ザ "),  # decomposed kana compose with their voicing marks
        ("ｶﾞｻﾞ", " ガ ザ "),  # half-width kana and marks
        ("カサブランカ", " カ サ ブ ラ ン カ "),  # so Gaza is not found inside Casablanca
        ("Ǣlfric", " aelfric "),
        ("Armenia\u200bAzerbaijan", " armenia azerbaijan "),  # a zero-width space separates words
        ("Arme\u00adnia", " armenia "),  # a soft hyphen does not
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold_words(text) == folded


def test_offsets_through_composed_kana() -> None:
    text = FoldedText("xカ\u3099サ\u3099y")
    assert text.folded == " x ガ ザ y "
    assert text.original(3, 6) == (1, 5)
