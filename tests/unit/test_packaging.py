"""The wheel carries the bundled SAE and the built-in datasets as real files, and the loader finds them.

The build runs on a copy of the source tree in a temporary folder (links kept, so the package's link to
``fixtures/gemma3-270m-sae`` resolves there as it does here), so the test writes nothing into the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = "sae_steer_checks/bundled/gemma3-270m-sae"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built by ``pip wheel --no-deps --no-build-isolation`` from a copy of the tree.

    Without isolation the build uses this environment's setuptools (the ``test`` extra brings it), so it
    needs no index and takes seconds.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("sae_steer_checks", "fixtures"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=skip)
    out = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    done = subprocess.run([*cmd, str(src)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (whl,) = out.glob("sae_steer_checks-*.whl")
    return whl


def test_wheel_carries_the_bundled_sae_and_the_builtin_datasets(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        infos = {info.filename: info for info in zf.infolist()}
    expected = {
        f"{BUNDLED}/cfg.json": ROOT / "fixtures/gemma3-270m-sae/cfg.json",
        f"{BUNDLED}/sae_weights.safetensors": ROOT / "fixtures/gemma3-270m-sae/sae_weights.safetensors",
    }
    expected |= {
        f"sae_steer_checks/data/builtin/{p.name}": p
        for p in (ROOT / "sae_steer_checks/data/builtin").glob("*.json")
    }
    assert len(expected) >= 5
    for name, source in expected.items():
        assert name in infos, f"{name} is not in the wheel"
        # a real file of the source's size, not a stored link (a link's entry holds only its target path)
        assert infos[name].file_size == source.stat().st_size, name
    assert "sae_steer_checks/py.typed" in infos
    assert not any(name.startswith(("tests/", "fixtures/", "bench/")) for name in infos)


def test_loader_finds_the_bundled_sae_inside_the_unpacked_wheel(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(unpacked)
    code = (
        f"import sys; sys.path.insert(0, {str(unpacked)!r}); "
        "from sae_steer_checks.sae.loading import bundled_sae_dir; print(bundled_sae_dir())"
    )
    # cwd away from the checkout, so the checkout's own package cannot be the one imported
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = Path(done.stdout.strip().splitlines()[-1])
    assert found == unpacked / BUNDLED
    assert (found / "cfg.json").is_file()
    assert not (found / "cfg.json").is_symlink()
