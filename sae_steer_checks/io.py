"""Reading the user's tensors and SAEs, and writing reports without leaving anything half-written.

Tensor files are safetensors: a steering vector under the key ``vector`` with shape ``[d]``, a set of
activations under the key ``activations`` with shape ``[n, d]``. An SAE is either a sae-lens folder
(``cfg.json`` + ``sae_weights.safetensors``) or a sae-lens ``release/id`` such as
``gemma-scope-2b-pt-res/layer_14/width_16k/average_l0_173``. Every problem with an input raises
:class:`InputError` whose one-line message names the input and what was expected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = [
    "InputError",
    "SAESource",
    "atomic_output_dir",
    "check_out_dir",
    "file_sha256",
    "load_activations",
    "load_sae",
    "load_tensor",
    "load_vector",
    "one_line",
    "parse_sae_spec",
    "save_tensors",
    "write_json",
]

VECTOR_KEY = "vector"
ACTIVATIONS_KEY = "activations"
_SAE_FILES = ("cfg.json", "sae_weights.safetensors")


class InputError(ValueError):
    """A bad input from the user; ``str(error)`` is one line naming the input and what was expected."""


def load_tensor(path: str | Path, key: str, *, ndim: int, name: str, width: int | None = None) -> Tensor:
    """Load ``key`` from the safetensors file ``path`` as a finite float32 tensor.

    ``ndim`` is the expected number of dimensions, ``width`` (if given) the expected size of the
    last one. ``name`` is how the input is called in error messages (e.g. ``"--vector"``).
    Returns a float32 CPU tensor of shape ``[d]`` (ndim 1) or ``[n, d]`` (ndim 2).
    """
    from safetensors import SafetensorError, safe_open

    where = f"{name} {path}"
    file = _readable_file(path, name)
    try:
        with safe_open(str(file), framework="pt") as handle:
            keys = sorted(handle.keys())
            if key not in keys:
                raise InputError(f"{where}: no tensor under key '{key}' (found keys: {keys})")
            tensor = handle.get_tensor(key)
    except SafetensorError as error:
        raise InputError(f"{where}: not a readable safetensors file ({one_line(error)})") from None
    expected = "[d]" if ndim == 1 else "[n, d]"
    if tensor.ndim != ndim:
        raise InputError(f"{where}: tensor '{key}' must have shape {expected}, got {list(tensor.shape)}")
    if not tensor.is_floating_point():
        raise InputError(f"{where}: tensor '{key}' must be floating point, got {tensor.dtype}")
    if tensor.numel() == 0:
        raise InputError(f"{where}: tensor '{key}' is empty (shape {list(tensor.shape)})")
    if width is not None and tensor.shape[-1] != width:
        raise InputError(
            f"{where}: tensor '{key}' has width {tensor.shape[-1]} but the SAE expects d_in={width}"
        )
    tensor = tensor.to(torch.float32)
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"{where}: tensor '{key}' contains {bad} NaN or infinite value(s)")
    return tensor


def load_vector(path: str | Path, *, name: str = "--vector", width: int | None = None) -> Tensor:
    """The steering vector ``[d]`` stored under key ``vector``."""
    return load_tensor(path, VECTOR_KEY, ndim=1, name=name, width=width)


def load_activations(path: str | Path, *, name: str, width: int | None = None) -> Tensor:
    """Activations ``[n, d]`` stored under key ``activations``."""
    return load_tensor(path, ACTIVATIONS_KEY, ndim=2, name=name, width=width)


def save_tensors(
    path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """Write ``tensors`` (contiguous CPU copies) to a safetensors file; returns the path."""
    from safetensors.torch import save_file

    out = Path(path)
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(out), metadata)
    return out


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


def parse_sae_spec(spec: str, *, name: str = "--sae") -> SAESource:
    """Read ``spec`` as a sae-lens folder if it exists, else as a known ``release/id``.

    Release ids contain slashes themselves, so the release is the longest known release name
    that ``spec`` starts with.
    """
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
    spec: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32, name: str = "--sae"
) -> tuple[Any, dict[str, Any]]:
    """Load the SAE named by ``spec`` (see :func:`parse_sae_spec`) with sae-lens.

    Returns ``(sae, provenance)`` where ``sae`` is a ``sae_lens.SAE`` on ``device`` in ``dtype`` and
    ``provenance`` a JSON-ready dict of where it came from.
    """
    from sae_lens import SAE

    source = parse_sae_spec(spec, name=name)
    dtype_name = str(dtype).removeprefix("torch.")
    try:
        if source.kind == "folder":
            sae = SAE.load_from_disk(source.path, device=device, dtype=dtype_name)  # type: ignore[arg-type]
        else:
            sae = SAE.from_pretrained(
                source.release,  # type: ignore[arg-type]
                source.sae_id,  # type: ignore[arg-type]
                device=device,
                dtype=dtype_name,
            )
    except Exception as error:  # sae-lens and the hub raise many types; all mean "cannot load"
        raise InputError(
            f"{name} {spec}: could not load the SAE ({type(error).__name__}: {one_line(error)})"
        ) from None
    return sae, source.describe()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_out_dir(out: str | Path, *, force: bool, name: str = "--out") -> Path:
    """Check before any work that ``out`` may receive a report; returns it as a ``Path``.

    ``out`` may be missing or an empty folder; a non-empty folder needs ``force``; a file never works.
    """
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"{name} {out}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise InputError(f"{name} {out}: folder exists and is not empty; pass --force to replace it")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise InputError(f"{name} {out}: parent folder {parent} does not exist")
    return path


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, *, force: bool, name: str = "--out") -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out``; on success move it into place as ``out``.

    If the body raises (or the process is interrupted) the temporary folder is removed and ``out``
    is left as it was. An existing non-empty ``out`` is replaced only with ``force``; the old one
    is moved aside first and deleted only after the new one is in place.
    """
    path = check_out_dir(out, force=force, name=name)
    parent = path.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    try:
        yield tmp
        old: Path | None = None
        if path.exists():
            # Re-check: something may have been written to ``out`` while we worked.
            check_out_dir(out, force=force, name=name)
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=parent))
            path.replace(old / path.name)
        tmp.replace(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON with sorted keys, 2-space indent and a final newline.

    Non-finite floats become ``null`` (``NaN`` is not JSON), so the file parses everywhere.
    """
    text = json.dumps(_finite(data), sort_keys=True, indent=2, allow_nan=False)
    out = Path(path)
    out.write_text(text + "\n", encoding="utf-8")
    return out


def _finite(value: Any) -> Any:
    # NaN/inf become null so the file stays valid JSON; the report says "not available" for them.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _readable_file(path: str | Path, name: str) -> Path:
    file = Path(path).expanduser()
    if not file.exists():
        raise InputError(f"{name} {path}: file not found")
    if not file.is_file():
        raise InputError(f"{name} {path}: expected a file, got a folder")
    try:
        with open(file, "rb") as handle:
            handle.read(1)
    except OSError as error:
        raise InputError(f"{name} {path}: cannot read ({error.strerror})") from None
    return file


def one_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
