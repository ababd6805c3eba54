"""core.predict.status: one spelling of a scan's status, read as plain strings by CSV, JSON and the app."""

from __future__ import annotations

import json

from core.predict import batch, series
from core.predict.status import Status


def test_status_members_are_their_strings_everywhere():
    assert [str(s) for s in Status] == ["ok", "not_brain_mri", "unreadable", "volume_edge"]
    assert f"{Status.NOT_BRAIN_MRI}" == "not_brain_mri" and Status.OK == "ok"
    assert json.dumps({"status": Status.VOLUME_EDGE}) == '{"status": "volume_edge"}'
    assert batch.Row(path="x", status=Status.UNREADABLE).as_csv()[1] == "unreadable"


def test_predict_and_series_share_the_one_vocabulary():
    for module in (batch, series):
        assert (module.OK, module.NOT_BRAIN_MRI, module.UNREADABLE, module.VOLUME_EDGE) == tuple(Status)
