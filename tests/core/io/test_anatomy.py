"""core.io.anatomy: head and body-part words in DICOM text."""

from __future__ import annotations

import pytest

from core.io.anatomy import anatomy_words, names_head, other_body_part

CASES = [
    ("MR KNEE LEFT", ("KNEE",), "knee"),
    ("L-SPINE SAG T2", ("SPINE",), "spine"),
    ("T1_SAG_LSPINE", ("SPINE",), "spine"),
    ("c spine stir", ("SPINE",), "spine"),
    ("ABD/PELVIS W+WO", ("ABD", "PELVIS"), "abdomen"),
    ("shoulder_cor_pd", ("SHOULDER",), "shoulder"),
    ("Hips bilat", ("HIP",), "hip"),
    ("Brain MRI w/o contrast", ("BRAIN",), None),
    ("HEAD AND NECK", ("HEAD",), None),
    ("NEURO^HEAD", ("HEAD", "NEURO"), None),
    ("BRAIN + C-SPINE", ("BRAIN", "SPINE"), None),  # the head is named: left to the pixels
    ("Pituitary dynamic", ("PITUIT",), None),
    ("T2 FLAIR AX", (), None),
    ("Handsome thighbone", (), None),  # parts of words do not count
    ("", (), None),
    (None, (), None),
]


@pytest.mark.parametrize(("text", "words", "other"), CASES)
def test_anatomy_words_and_what_they_name(text, words, other):
    assert anatomy_words(text) == words
    assert other_body_part(words) == other
    assert names_head(words) == any(w in ("BRAIN", "HEAD", "NEURO", "PITUIT") for w in words)
