"""The study folder: every file written, synthetic statement and ICC only when they apply, deterministic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from liver_mm.stats import ICC_FORMS, icc, markdown_table, table1, table2
from liver_mm.study.compare import compare_study
from liver_mm.study.report.markdown import SYNTHETIC_STATEMENT, write_report
from liver_mm.study.report.provenance import study_provenance
from liver_mm.study.report.tables import ARM_ORDER, bbox_areas, format_table3
from tests.study.test_compare import make_predictions

ORDER = list(ARM_ORDER)
PROVENANCE = {"study": "tiny", "seed": 0, "manifest_hash": "abc123", "split_hash": "def456",
              "git_commit": "0123abcd", "torch_version": "2.x", "config": {"image_size": 64, "max_epochs": 2},
              "config_yaml": "data:\n  n: 60\n"}
COMMAND = "liver-mm study experiment=demo data.n=60"
ALWAYS = ["report.md", "report.html", "table3.html", "table3.csv", "table3.md", "delong.csv", "delong.json", "delong.md", "test_predictions.csv",
          "predictions.csv", "figure2_roc.png", "calibration.png", "auc_by_step.png", "counts.csv",
          "table1.csv", "table1.md", "table2.csv", "table2.md", "tripod.csv"]


@pytest.fixture(scope="module")
def cohort(tiny_cohort) -> pd.DataFrame:
    """The tiny synthetic cohort with a stratified 60/20/20 split."""
    df = pd.read_csv(tiny_cohort)
    rng = np.random.default_rng(3)
    split = np.empty(len(df), dtype=object)
    for lab in ("benign", "malignant"):
        idx = rng.permutation(np.flatnonzero(df["label"].to_numpy() == lab))
        n = idx.size
        split[idx] = "train"
        split[idx[: n // 5]] = "dev"
        split[idx[n // 5: 2 * (n // 5)]] = "test"
    return df.assign(split=split)


@pytest.fixture(scope="module")
def study(cohort):
    preds = make_predictions(cohort["case_id"], cohort["label"], cohort["split"], seed=5)
    return preds, compare_study(preds, ORDER)


@pytest.fixture(scope="module")
def written(tmp_path_factory, study, cohort):
    """report.md of the full study folder (synthetic cohort with a second observer), written once."""
    return _write(tmp_path_factory.mktemp("report"), study, cohort)


def _write(tmp_path, study, cohort, name="study", **kw):
    preds, comp = study
    args = {"provenance": PROVENANCE, "synthetic": True, "command": COMMAND} | kw
    return write_report(tmp_path / name, comp, preds, cohort, **args)


def test_writes_every_file(written, study, cohort):
    preds, comp = study
    path = written
    out = path.parent
    for name in [*ALWAYS, "icc.csv"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert pd.read_csv(out / "table3.csv")["arm"].tolist() == ORDER
    assert json.loads((out / "delong.json").read_text()) == json.loads(json.dumps(comp.delong))
    assert (out / "table2.md").read_text() == markdown_table(table2(cohort))
    assert pd.read_csv(out / "table2.csv")["variable"].tolist() == table2(cohort)["variable"].tolist()
    assert (out / "table1.md").read_text() == markdown_table(table1(cohort))
    long = pd.read_csv(out / "predictions.csv")
    assert sorted(long["arm"].unique()) == sorted(ORDER) and len(long) == sum(len(p) for p in preds.values())

    text = path.read_text()
    assert text.startswith("# Study report: study\n")
    assert SYNTHETIC_STATEMENT in text
    assert COMMAND in text
    for item in ("| manifest_hash | abc123 |", "| split_hash | def456 |", "| git_commit | 0123abcd |",
                 "| seed | 0 |", "| config.image_size | 64 |", "**config_yaml**"):
        assert item in text, item
    assert comp.table3_md in text and comp.delong_md in text
    assert (out / "table2.md").read_text() in text
    for fig in ("figure2_roc.png", "calibration.png", "auc_by_step.png"):
        assert f"]({fig})" in text
    assert "| test | " in text and "| all | " in text  # cohort counts per split
    assert f"--scores {','.join(ORDER)} --reference m1" in text
    # the TRIPOD+AI section (tests/study/test_tripod.py checks its items); tripod.csv listed
    assert text.count("## TRIPOD+AI checklist") == 1 and "- [tripod.csv](tripod.csv)" in text
    # results first: the synthetic label on top, the answer, cohort, Table 3, Figure 2, DeLong, calibration,
    # TRIPOD+AI; provenance in the appendix at the end (before the files list)
    assert text.splitlines()[2] == f"**{SYNTHETIC_STATEMENT}**"
    marks = ["## Question and answer", "## Cohort", "### Table 3: diagnostic performance", "](figure2_roc.png)",
             "### DeLong tests of the AUCs", "## Calibration and clinical usefulness", "](decision_curve.png)",
             "## TRIPOD+AI checklist", "## Appendix: How this was produced", "| manifest_hash | abc123 |", "## Files"]
    at = [text.index(m) for m in marks]
    assert at == sorted(at), [m for m, i in zip(marks, at, strict=True)]
    assert "## Figures" not in text  # no extra figure: Figure 2 and the AUC plot sit with Table 3
    assert len(pd.read_csv(out / "tripod.csv")) == 52


def test_score_arms_the_dictionary_cannot_run_are_named_under_table3(tmp_path, study, cohort):
    """FIB-4/APRI dropped for a dictionary without their inputs: a line right under Table 3 and rows in the
    appendix, naming the arm, the missing inputs and the dictionary (none without skipped arms)."""
    skipped = {"fib4": "inputs ast, alt, platelets not declared by the data dictionary lesions.yaml",
               "apri": "inputs ast, platelets not declared by the data dictionary lesions.yaml"}
    text = _write(tmp_path, study, cohort, provenance={**PROVENANCE, "skipped_arms": skipped}).read_text()
    line = ("Not run: fib4 (inputs ast, alt, platelets not declared by the data dictionary lesions.yaml); "
            "apri (inputs ast, platelets not declared by the data dictionary lesions.yaml).")
    assert text.count(line) == 1
    assert text.index("### Table 3: diagnostic performance") < text.index(line) < text.index("](figure2_roc.png)")
    assert "| skipped_arms.apri | inputs ast, platelets not declared by the data dictionary lesions.yaml |" in text
    assert "Not run:" not in _write(tmp_path, study, cohort, name="plain").read_text()


def test_icc_of_bbox_areas(written, cohort):
    path = written
    got = pd.read_csv(path.parent / "icc.csv")
    assert got["form"].tolist() == list(ICC_FORMS)
    areas = np.column_stack([(cohort.bbox_x1 - cohort.bbox_x0) * (cohort.bbox_y1 - cohort.bbox_y0),
                             (cohort.bbox2_x1 - cohort.bbox2_x0) * (cohort.bbox2_y1 - cohort.bbox2_y0)])
    np.testing.assert_array_equal(bbox_areas(cohort), areas[:, 0])
    ref = icc(areas)
    for row in got.itertuples():
        assert row.icc == pytest.approx(ref[row.form].icc, rel=1e-12)
        assert row.ci_low == pytest.approx(ref[row.form].ci_low, rel=1e-12)
    text = path.read_text()
    icc2 = ref["ICC2"]
    assert f"**ICC2 (two-way random, absolute agreement) = {icc2.icc:.3f} ({icc2.ci_low:.3f}–{icc2.ci_high:.3f})**" in text
    assert "| **ICC3** |" in text and "| ICC1 |" in text


def test_real_cohort_without_second_observer(tmp_path, study, cohort):
    plain = cohort.drop(columns=[c for c in cohort.columns if c.startswith("bbox2_")])
    path = _write(tmp_path, study, plain, synthetic=False)
    text = path.read_text()
    assert SYNTHETIC_STATEMENT not in text and "SYNTHETIC" not in text
    assert not (path.parent / "icc.csv").exists()
    assert "ICC" not in text and "icc.csv" not in text
    for name in ALWAYS:
        assert (path.parent / name).is_file(), name


def test_missing_subtype_skips_table1(tmp_path, study, cohort):
    path = _write(tmp_path, study, cohort.drop(columns="subtype"))
    assert not (path.parent / "table1.csv").exists()
    assert "Not available: table1 needs a 'subtype' column" in path.read_text()


def test_deterministic(tmp_path, study, cohort, written):
    a = written.parent
    b = _write(tmp_path, study, cohort, name="b").parent
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name in ("report.md", "report.html", "table3.html"):  # the folder's name; one "Generated at" line
            continue
        assert (a / name).read_bytes() == (b / name).read_bytes(), name

    def body(p):
        return [ln for ln in (p / "report.md").read_text().splitlines()
                if not ln.startswith("Generated at ") and not ln.startswith("# Study report")]

    assert body(a) == body(b)

    def page(p, name):
        return [ln for ln in (p / name).read_text().splitlines()
                if not any(k in ln for k in ("Generated at ", "<title>", "<h1"))]

    for name in ("report.html", "table3.html"):
        assert page(a, name) == page(b, name), name
    assert sum(ln.startswith("Generated at ") for ln in (a / "report.md").read_text().splitlines()) == 1


def test_extra_figures_are_copied_and_linked(tmp_path, study, cohort):
    src = tmp_path / "learning_curves.png"
    src.write_bytes(b"\x89PNG fake")
    path = _write(tmp_path, study, None, extra_figures={"Learning curves": src})
    assert (path.parent / "learning_curves.png").read_bytes() == b"\x89PNG fake"
    text = path.read_text()
    assert "![Learning curves](learning_curves.png)" in text
    assert "cohort tables omitted" in text
    with pytest.raises(FileNotFoundError, match="nope.png"):
        _write(tmp_path, study, None, extra_figures={"x": tmp_path / "nope.png"})


def test_study_provenance_collects_versions(monkeypatch):
    from liver_mm.tracking import runs as tracking

    # the run provenance itself (imports torch, asks git) is the training package's; only the merge is tested here
    monkeypatch.setattr(tracking, "provenance", lambda: {"liver_mm_version": "0.1.0", "git_commit": "abc",
                                                         "torch_version": "2.x"})
    prov = study_provenance({"image_size": 64}, "m-hash", "s-hash", seed=7)
    assert (prov["seed"], prov["manifest_hash"], prov["split_hash"]) == (7, "m-hash", "s-hash")
    for key in ("git_commit", "liver_mm_version", "torch_version", "numpy_version", "pandas_version"):
        assert prov[key], key
    assert prov["config"] == {"image_size": 64}


def test_run_provenance_names_the_cpu_kernels():
    """CPU-trained floats depend on the vector instruction set torch dispatches to: every run records it."""
    import torch

    from liver_mm.tracking.runs import provenance

    assert provenance()["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert provenance()["cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "NO AVX", "ZVECTOR", "SVE256", "VSX"}


def test_report_html_opens_self_contained_in_chromium(written, tmp_path):
    """report.html in real headless Chromium: every figure loaded, Table 3's cells are table3.csv's, and the
    page asked for nothing but itself (and its data: images)."""
    from tests.browser import all_images_loaded, chromium, requested_urls

    out = written.parent
    page = out / "report.html"
    with chromium(tmp_path / "profile") as driver:
        requested_urls(driver)  # the browser's own start page
        driver.get(page.as_uri())
        widths = all_images_loaded(driver)
        urls = requested_urls(driver)
        table = driver.find_element("xpath", "//h3[starts-with(., 'Table 3')]/following-sibling::table[1]")
        header = [th.text for th in table.find_elements("css selector", "thead th")]
        cells = [[td.text for td in tr.find_elements("css selector", "td")]
                 for tr in table.find_elements("css selector", "tbody tr")]
        synthetic = driver.find_element("css selector", "body > *:nth-child(2)")
        assert synthetic.text == SYNTHETIC_STATEMENT and synthetic.get_attribute("class") == "synthetic"
        driver.save_screenshot(str(tmp_path / "report.png"))
    # the figures of report.md, each loaded
    assert len(widths) == written.read_text().count("![") and widths and min(widths) > 0, widths
    # nothing but the page and its data: images (chrome:// is the browser's own start page, never the network)
    assert page.as_uri() in urls
    assert [u for u in urls if u != page.as_uri() and not u.startswith(("data:", "chrome:", "chrome-untrusted:"))] == []
    expected = format_table3(pd.read_csv(out / "table3.csv")).fillna("")  # no description: an empty cell
    assert header == list(expected.columns)
    assert cells == expected.astype(str).to_numpy().tolist()
    auc = pd.read_csv(out / "table3.csv").set_index("arm").at["m3", "auc"]
    assert f"{auc:.3f}" in cells[ORDER.index("m3")][list(expected.columns).index("AUC (95% CI)")]
