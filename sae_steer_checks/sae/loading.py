"""Loading SAEs: a sae-lens folder, a sae-lens release and id, or the SAE bundled with the package.

An SAE is either a sae-lens folder (``cfg.json`` + ``sae_weights.safetensors``) or a sae-lens
``release/id`` such as ``gemma-scope-2b-pt-res/layer_14/width_16k/average_l0_173``. Every problem
raises :class:`~sae_steer_checks._validate.InputError` naming the input and what was expected.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from sae_steer_checks._provenance import file_sha256
from sae_steer_checks._validate import InputError, one_line

if TYPE_CHECKING:
    from sae_lens import SAE

    from sae_steer_checks.sae.protocol import SAELike

__all__ = [
    "BUNDLED_SAE",
    "SAESource",
    "bundled_sae_dir",
    "load_sae",
    "load_sae_folder",
    "load_sae_metadata",
    "parse_sae_spec",
    "sae_layer",
]

_SAE_FILES = ("cfg.json", "sae_weights.safetensors")
#: Name of the SAE shipped inside the package (trained by ``train-sae`` on Gemma 3 270M, layer 10).
BUNDLED_SAE = "gemma3-270m-sae"


@dataclass(frozen=True)
class SAESource:
    """Where an SAE comes from: a sae-lens folder, or a release and id of sae-lens' directory."""

    kind: Literal["folder", "release"]
    """``folder`` or ``release``."""
    path: Path | None = None
    """The folder, for ``kind == "folder"``."""
    release: str | None = None
    """The sae-lens release, for ``kind == "release"``."""
    sae_id: str | None = None
    """The id within the release, for ``kind == "release"``."""

    def __post_init__(self) -> None:
        if self.kind not in ("folder", "release"):
            raise ValueError(f"kind must be 'folder' or 'release', got {self.kind!r}")
        if self.kind == "folder" and self.path is None:
            raise ValueError("path is required when kind='folder'")
        if self.kind == "release" and (not self.release or not self.sae_id):
            raise ValueError("release and sae_id are required when kind='release'")

    def describe(self) -> dict[str, Any]:
        """JSON-ready provenance of the source (folder and weight hash, or release and id)."""
        if self.kind == "folder":
            assert self.path is not None
            return {
                "source": "folder",
                "path": str(self.path),
                "weights_sha256": file_sha256(self.path / "sae_weights.safetensors"),
            }
        return {"source": "release", "release": self.release, "sae_id": self.sae_id}


def parse_sae_spec(spec: str | os.PathLike[str], *, name: str = "sae") -> SAESource:
    """Read ``spec`` as a sae-lens folder if it exists, else as a known ``release/id``.

    Release ids contain slashes themselves, so the release is the longest known release name
    that ``spec`` starts with. Errors are ``InputError`` (a ``ValueError``) whose message starts with
    ``name`` and ``spec``.
    """
    spec = os.fspath(spec)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(
                f"{name} {spec}: expected a sae-lens folder with {' and '.join(_SAE_FILES)}, got a file"
            )
        missing = [f for f in _SAE_FILES if not (path / f).is_file()]
        if missing:
            raise InputError(
                f"{name} {spec}: the folder lacks {', '.join(missing)} (a sae-lens SAE folder "
                f"holds {' and '.join(_SAE_FILES)})"
            )
        return SAESource(kind="folder", path=path)
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    releases = sorted((r for r in directory if spec.startswith(r + "/")), key=len)
    if not releases:
        raise InputError(
            f"{name} {spec}: no such folder, and not a known sae-lens release/id "
            "(e.g. gemma-scope-2b-pt-res/layer_14/width_16k/average_l0_173)"
        )
    release = releases[-1]
    sae_id = spec[len(release) + 1 :]
    known = directory[release].saes_map
    if sae_id not in known:
        examples = ", ".join(sorted(known)[:3])
        raise InputError(
            f"{name} {spec}: unknown id '{sae_id}' in sae-lens release '{release}' "
            f"({len(known)} ids, e.g. {examples})"
        )
    return SAESource(kind="release", release=release, sae_id=sae_id)


def load_sae(
    spec: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    name: str = "sae",
) -> SAE[Any]:
    """Load the SAE named by ``spec`` (a sae-lens folder or ``release/id``, see :func:`parse_sae_spec`).

    Returns a ``sae_lens.SAE`` on ``device`` in ``dtype``; :func:`load_sae_metadata` says where it
    came from. Every failure is an ``InputError`` (a ``ValueError``) whose one-line message starts with
    ``name`` and ``spec``; a failure inside sae-lens or the hub keeps that error as its cause.
    """
    from sae_lens import SAE

    source = parse_sae_spec(spec, name=name)
    device_name = str(torch.device(device))
    dtype_name = str(dtype).removeprefix("torch.")
    try:
        if source.kind == "folder":
            return SAE.load_from_disk(source.path, device=device_name, dtype=dtype_name)
        return SAE.from_pretrained(source.release, source.sae_id, device=device_name, dtype=dtype_name)
    except Exception as error:  # sae-lens and the hub raise many types; all mean "cannot load"
        raise InputError(
            f"{name} {os.fspath(spec)}: could not load the SAE ({type(error).__name__}: {one_line(error)})"
        ) from error


def load_sae_metadata(spec: str | os.PathLike[str], *, name: str = "sae") -> dict[str, Any]:
    """Where the SAE named by ``spec`` comes from, JSON-ready, for a report's provenance.

    A folder gives ``{"source": "folder", "path", "weights_sha256"}``, a release
    ``{"source": "release", "release", "sae_id"}``. Nothing is loaded but the folder's weights file,
    which is hashed. Errors as :func:`parse_sae_spec`.
    """
    return parse_sae_spec(spec, name=name).describe()


def sae_layer(sae: SAELike) -> int:
    """The decoder block an SAE reads (layer ``L`` is the output of block ``L``), from its sae-lens metadata.

    Reads ``cfg.metadata.layer`` (written by ``train_sae``), else the block index in
    ``cfg.metadata.hook_name`` (``blocks.L.hook_resid_post``). Raises ``ValueError`` when neither is there.
    """
    metadata = getattr(getattr(sae, "cfg", None), "metadata", None)
    layer = metadata.get("layer") if isinstance(metadata, dict) else getattr(metadata, "layer", None)
    if isinstance(layer, int) and not isinstance(layer, bool):
        return layer
    match = re.fullmatch(r"blocks\.(\d+)\.hook_resid_post", str(getattr(metadata, "hook_name", "")))
    if match:
        return int(match.group(1))
    raise ValueError("sae: its cfg.json metadata names no layer (neither 'layer' nor a blocks.L hook_name)")


def load_sae_folder(path: str | Path, *, device: str | torch.device = "cpu") -> SAE[Any]:
    """Load the sae-lens SAE saved in folder ``path`` (e.g. by ``train_sae``) as float32 on ``device``."""
    from sae_lens import SAE

    path = Path(path)
    if not (path / "cfg.json").is_file():
        raise FileNotFoundError(f"path: no sae-lens SAE (cfg.json) in {path}")
    return SAE.load_from_disk(str(path), device=str(torch.device(device)), dtype="float32")


def bundled_sae_dir() -> Path:
    """The folder of the SAE shipped in the package (``sae_steer_checks/bundled/gemma3-270m-sae``).

    The source of truth is ``fixtures/gemma3-270m-sae`` in the repository; the package links to it
    and wheels carry a copy. Raises ``FileNotFoundError`` with the rebuild command if it is missing.
    """
    folder = Path(str(resources.files("sae_steer_checks") / "bundled" / BUNDLED_SAE))
    if not (folder / "cfg.json").is_file():
        raise FileNotFoundError(
            f"the bundled SAE is missing from {folder}: reinstall the package, or rebuild it with the "
            "train-sae command given in README.md"
        )
    return folder
