"""Anatomy words in DICOM text: is a file said to show the head, or another part of the body?

Used on BodyPartExamined and on the free-text StudyDescription, SeriesDescription and ProtocolName (never
the file name). Only the words below are ever kept from those texts, so no other text of a file (which
may name a person or a site) reaches the scan's metadata.
"""

from __future__ import annotations

import re

#: Word beginnings meaning the head or brain ("CEREB" matches CEREBRAL and CEREBELLUM).
HEAD_WORDS = ("HEAD", "BRAIN", "SKULL", "CRANI", "NEURO", "CEREB", "PITUIT", "SELLA", "INTRACRAN")
#: Other body parts, each a whole word (an optional plural S), and the plain name a reason uses.
BODY_WORDS = {
    "KNEE": "knee", "SPINE": "spine", "LSPINE": "spine", "CSPINE": "spine", "TSPINE": "spine", "LUMBAR": "spine",
    "THORACIC": "spine", "CERVICAL": "cervical spine", "SACRUM": "spine", "SACRAL": "spine", "SHOULDER": "shoulder",
    "ELBOW": "elbow", "WRIST": "wrist", "HAND": "hand", "FINGER": "hand", "HIP": "hip", "PELVIS": "pelvis",
    "PELVIC": "pelvis", "ABDOMEN": "abdomen", "ABD": "abdomen", "ABDOMINAL": "abdomen", "CHEST": "chest",
    "THORAX": "chest", "LUNG": "chest", "BREAST": "breast", "CARDIAC": "heart", "HEART": "heart",
    "PROSTATE": "prostate", "LIVER": "abdomen", "KIDNEY": "abdomen", "RENAL": "abdomen", "MRCP": "abdomen",
    "ANKLE": "ankle", "FOOT": "foot", "FEET": "foot", "LEG": "leg", "THIGH": "leg", "FEMUR": "leg",
    "ARM": "arm", "FOREARM": "arm", "HUMERUS": "arm", "EXTREMITY": "limb", "UTERUS": "pelvis", "RECTUM": "pelvis",
}
_HEAD = re.compile(r"\b(" + "|".join(HEAD_WORDS) + r")[A-Z]*")
# "L-SPINE", "L SPINE" and "LSPINE" alike: a one-letter prefix joined to SPINE counts as SPINE
_BODY = re.compile(r"\b(?:[LCT][- ]?(?=SPINE))?(" + "|".join(sorted(BODY_WORDS, key=len, reverse=True)) + r")S?\b")


def anatomy_words(text: str | None) -> tuple[str, ...]:
    """The head and body-part words found in `text` (any case), in canonical form, sorted; () for none."""
    upper = (text or "").upper().replace("_", " ")
    found = {match.group(1) for match in _HEAD.finditer(upper)} | {match.group(1) for match in _BODY.finditer(upper)}
    return tuple(sorted(found))


def names_head(words: tuple[str, ...]) -> bool:
    """True when any of `words` (from anatomy_words) means the head."""
    return any(word in HEAD_WORDS for word in words)


def other_body_part(words: tuple[str, ...]) -> str | None:
    """The plain name of a non-head body part among `words`, unless the head is named too (then None)."""
    if names_head(words):
        return None
    parts = [BODY_WORDS[word] for word in words if word in BODY_WORDS]
    return parts[0] if parts else None
