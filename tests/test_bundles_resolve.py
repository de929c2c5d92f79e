"""One rule finds a model bundle, whichever stage asks: shipped name first, else a folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from modic.errors import ModelError
from modic.resources import models_dir, resolve_bundle
from modic.segmentation.bundle import load_bundle


def test_a_shipped_name_means_the_shipped_bundle_even_beside_a_folder_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spine_seg").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_bundle("spine_seg") == models_dir() / "spine_seg"
    assert resolve_bundle(tmp_path / "spine_seg") == tmp_path / "spine_seg"


def test_a_folder_is_used_as_given(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(models_dir() / "spine_seg", tmp_path / "my_model"))
    assert resolve_bundle(copy) == copy
    assert load_bundle(copy).path == copy
    assert load_bundle("spine_seg").path == models_dir() / "spine_seg"


def test_neither_is_one_error_naming_the_kind_and_the_shipped_names(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as caught:
        resolve_bundle(tmp_path / "nothing", kind="grading")
    message = str(caught.value)
    assert message.startswith(f"grading bundle '{tmp_path / 'nothing'}' is neither a folder nor a bundle shipped")
    shipped = sorted(p.name for p in models_dir().iterdir() if (p / "configs").is_dir())
    assert all(name in message for name in shipped) and "spine_seg" in shipped
    assert os.sep in message
