"""A Kaggle kernel for a train.csv competition: the template finds the mounted competition by
its sample_submission.csv and reads its own image folders in place (no images view)."""

from __future__ import annotations

import shutil
from pathlib import Path

from kaggle_fake import kaggle_mounts, kernel_template

from fathom.data import open_dataset
from fathom.synth import write_synthetic

ROOT = Path(__file__).resolve().parents[1]


def test_kernel_paths_find_a_csv_competition_and_read_it_in_place(tmp_path):
    tpl = kernel_template()
    comp = tmp_path / "comp"
    write_synthetic(comp, "csv", progress=False, format="ranked", n_train=60, n_eval=20)
    inp, env = kaggle_mounts(tmp_path)
    slug = "humpback-whale-identification"
    shutil.copytree(comp, inp / "competitions" / slug, ignore=shutil.ignore_patterns("hidden"))
    settings = dict(tpl.SETTINGS, competition=slug, weights_dataset="alice/fathom-weights")
    paths = tpl.kaggle_paths(settings, env)
    assert paths["comp_source"] == inp / "competitions" / slug
    view = tpl.competition_view(paths["comp_source"], None, ["eval"], paths["tmp"])
    assert view == paths["comp_source"]  # nothing to link: train/ and test/ are in the archive
    assert len(open_dataset(view).split("eval")) == 20  # every test image found
