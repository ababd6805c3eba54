"""docs/finetune_study: every committed run's results recompute from its scores, and the page quotes them."""

from __future__ import annotations

import json

import pytest

from tests.support.paths import REPO
from train.studies import finetune_eval

DOCS = REPO / "docs"
RUNS = sorted(p.parent for p in (DOCS / "finetune_study").glob("*/results.json"))


def test_there_is_a_committed_run():
    assert RUNS, "docs/finetune_study/ holds no run"


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_results_recompute_from_the_scores_and_the_page_quotes_them(run):
    results = json.loads((run / finetune_eval.RESULTS_FILE).read_text())
    assert results["variants"] == json.loads(json.dumps(finetune_eval.recompute(run)))
    assert (run / "results.md").read_text() == finetune_eval.to_markdown(results)
    page = (DOCS / "finetune_study.md").read_text()
    for line in finetune_eval.to_markdown(results).splitlines()[2:]:
        assert line in page, f"docs/finetune_study.md does not quote {run.name}'s row: {line}"


@pytest.mark.parametrize("run", [r for r in RUNS if (r / "compare.md").is_file()],
                         ids=[r.name for r in RUNS if (r / "compare.md").is_file()])
def test_a_committed_comparison_is_its_json_as_a_table_and_the_page_quotes_it(run):
    from train.studies import finetune_compare

    result = json.loads((run / finetune_compare.COMPARE_FILE).read_text())
    assert (run / "compare.md").read_text() == finetune_compare.to_markdown(result)
    page = (DOCS / "finetune_study.md").read_text()
    missing = [line for line in finetune_compare.to_markdown(result).splitlines() if line not in page]
    assert not missing, f"docs/finetune_study.md does not quote {run.name}'s comparison: {missing}"


STRATIFIED = [r for r in RUNS if (r / "strata.md").is_file()]


def test_every_committed_lgg_fold_is_stratified():
    lgg_folds = [r for r in RUNS if json.loads((r / finetune_eval.RESULTS_FILE).read_text())["held_out"] == "lgg"]
    missing = [r.name for r in lgg_folds if r not in STRATIFIED]
    assert lgg_folds and not missing, f"run brain-mri finetune-strata --run RUN on {missing}"


@pytest.mark.parametrize("run", STRATIFIED, ids=[r.name for r in STRATIFIED])
def test_a_committed_stratification_recomputes_from_the_scores_and_the_page_quotes_it(run, shared_data):
    from train.studies import finetune_strata

    result = json.loads((run / finetune_strata.STRATA_FILE).read_text())
    payload = json.loads((run / finetune_eval.SCORES_FILE).read_text())
    recomputed = finetune_strata.run_strata(payload, result["variant"], shared_data, tuple(result["band"]))
    assert result["folders"] == json.loads(json.dumps(recomputed))
    assert (run / "strata.md").read_text() == finetune_strata.to_markdown(result)
    page = (DOCS / "finetune_study.md").read_text()
    auc_table = finetune_strata.to_markdown(result).split("\n\nMean probability")[0]
    missing = [line for line in auc_table.splitlines() if line.startswith("| lgg") and line not in page]
    assert not missing, f"docs/finetune_study.md does not quote {run.name}'s strata: {missing}"
