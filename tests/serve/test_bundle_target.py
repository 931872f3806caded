"""A bundle's spec.json chooses what Hydra instantiates: only liver-mm's networks may be built."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from liver_mm.serve.bundle import load_bundle


def _tampered(bundle: Path, tmp_path: Path, change) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(bundle, folder)
    spec = json.loads((folder / "spec.json").read_text())
    change(spec["net"])
    (folder / "spec.json").write_text(json.dumps(spec))
    return folder


@pytest.mark.parametrize("target", ["os.makedirs", "os.system"])  # Hydra's own blocklist lets os.makedirs run
def test_foreign_target_is_refused_and_never_called(tabular_bundle, tmp_path, target):
    marker = tmp_path / "pwned"
    args = [str(marker)] if target == "os.makedirs" else [f"touch {marker}"]
    folder = _tampered(tabular_bundle, tmp_path, lambda net: net.clear() or net.update({"_target_": target, "_args_": args}))
    with pytest.raises(ValueError) as info:
        load_bundle(folder)
    assert str(info.value).startswith(f"{folder}/spec.json: net._target_ = '{target}' is not a liver-mm network; "
                                      "a bundle may only build liver_mm.models.")
    assert not marker.exists()  # the target never ran


def test_foreign_target_at_any_depth_is_refused(tabular_bundle, tmp_path):
    marker = tmp_path / "pwned"
    folder = _tampered(tabular_bundle, tmp_path, lambda net: net.update(
        tabular={"_target_": "os.makedirs", "name": str(marker)}))
    with pytest.raises(ValueError, match=r"spec.json: net.tabular._target_ = 'os.makedirs' is not a liver-mm network"):
        load_bundle(folder)
    assert not marker.exists()


def test_own_networks_still_load(tabular_bundle, image_bundle):
    assert type(load_bundle(tabular_bundle).net).__module__.startswith("liver_mm.models")
    assert load_bundle(image_bundle).spec["use_image"] is True


@pytest.mark.parametrize("key", ["net.fusion", "net.tabular.hidden[0]", "modalities.name"])
def test_interpolation_in_spec_is_refused_naming_the_key(tabular_bundle, tmp_path, monkeypatch, key):
    """Hydra resolves ``${oc.env:...}`` while instantiating: a spec that tries to read the environment is
    refused before anything is built (on a spec that resolved, ``concat`` / 8 / a name would load)."""
    monkeypatch.setenv("LIVER_MM_PROBE", "8" if "hidden" in key else "concat")
    folder = tmp_path / "bundle"
    shutil.copytree(tabular_bundle, folder)
    spec = json.loads((folder / "spec.json").read_text())
    node, *path = key.replace("[0]", ".0").split(".")
    parent = spec[node]
    for part in path[:-1]:
        parent = parent[part]
    leaf = int(path[-1]) if path[-1].isdigit() else path[-1]
    parent[leaf] = "${oc.env:LIVER_MM_PROBE}"
    (folder / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError) as info:
        load_bundle(folder)
    assert str(info.value) == (f"{folder}/spec.json: {key} holds an interpolation ('${{'): a saved model spec "
                               "holds plain values only; refusing to load it")


def test_spec_reading_home_is_refused(tabular_bundle, tmp_path):
    folder = _tampered(tabular_bundle, tmp_path, lambda net: net.update(fusion="${oc.env:HOME}"))
    with pytest.raises(ValueError, match=r"spec.json: net.fusion holds an interpolation"):
        load_bundle(folder)
