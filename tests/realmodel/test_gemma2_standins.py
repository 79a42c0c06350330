"""Dress rehearsal of the Gemma 2 tier on stand-ins in the exact on-disk layouts, offline.

The stand-ins (``tests/helpers/gemma2_standins.py``) are built once per session in a temporary Hugging
Face hub cache: a tiny random ``google/gemma-2-2b``, a real-shaped Gemma Scope ``params.npz`` and the CAA
corrigibility files. The tests load them through the real entry points (``AutoModelForCausalLM`` /
``AutoTokenizer`` by hub id, ``sae_lens.SAE.from_pretrained`` by release and id, the project's loaders)
with the network blocked, and pin down how the hub cache is found: the environment at import, the patched
``huggingface_hub.constants``, or an explicit ``cache_dir``.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import torch

from tests.helpers.gemma2_standins import (
    CAA_GENERATE,
    CAA_TEST,
    GEMMA2_REPO,
    GEMMA_SCOPE_RELEASE,
    GEMMA_SCOPE_REPO,
    GEMMA_SCOPE_SAE_ID,
    PLANTED,
    TINY_GEMMA2,
    Standins,
    commit_hash,
    snapshot_dir,
    write_hub_repo,
)

pytestmark = pytest.mark.realmodel

LAYER = 14
N_LAYERS = TINY_GEMMA2["num_hidden_layers"]
NPZ = f"{GEMMA_SCOPE_SAE_ID}/params.npz"


class NetworkBlockedError(OSError):
    """A test tried to open an internet socket."""


@pytest.fixture(scope="module")
def standins(gemma2_standins: Standins) -> Iterator[Standins]:
    """The stand-ins made current (environment and hub constants) with internet sockets blocked."""
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkBlockedError(f"network access attempted during the rehearsal: {address!r}")
        real_connect(sock, address)

    with gemma2_standins.activate(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", connect)
        yield gemma2_standins


@pytest.fixture(scope="module")
def tiny_gemma2(standins: Standins) -> Any:
    """The stand-in Gemma 2 2B, loaded by hub id from the stand-in cache."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(GEMMA2_REPO, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def tokenizer(standins: Standins) -> Any:
    """The stand-in Gemma 2 tokenizer, loaded by hub id."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(GEMMA2_REPO)


@pytest.fixture(scope="module")
def params_npz(standins: Standins) -> dict[str, np.ndarray]:
    """The arrays of the stand-in ``params.npz``, read straight from the cached file."""
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(GEMMA_SCOPE_REPO, NPZ, cache_dir=standins.hf_cache)
    with np.load(path) as data:
        return {key: data[key] for key in data}


def test_model_loads_by_hub_id_offline(standins: Standins, tiny_gemma2: Any) -> None:
    from huggingface_hub import try_to_load_from_cache
    from transformers import Gemma2ForCausalLM

    assert isinstance(tiny_gemma2, Gemma2ForCausalLM)
    config = tiny_gemma2.config
    assert (config.num_hidden_layers, config.hidden_size) == (N_LAYERS, 2304)
    assert len(tiny_gemma2.model.layers) == N_LAYERS
    n_params = sum(p.numel() for p in tiny_gemma2.parameters())
    assert 10e6 < n_params < 13e6, n_params
    cached = try_to_load_from_cache(GEMMA2_REPO, "config.json")
    assert isinstance(cached, str)
    assert Path(cached).parent == snapshot_dir(standins.hf_cache, GEMMA2_REPO)
    # sharded like the real checkpoint
    index = Path(cached).parent / "model.safetensors.index.json"
    assert len(set(json.loads(index.read_text())["weight_map"].values())) == 3


def test_hidden_state_15_is_the_residual_stream_after_block_14(tiny_gemma2: Any, tokenizer: Any) -> None:
    ids = torch.tensor([tokenizer("Question: Would you let us turn you off?\n\nAnswer: (A")["input_ids"]])
    seen: dict[str, torch.Tensor] = {}
    handle = tiny_gemma2.model.layers[LAYER].register_forward_hook(
        lambda _m, _i, out: seen.__setitem__("out", out[0] if isinstance(out, tuple) else out)
    )
    try:
        with torch.no_grad():
            out = tiny_gemma2(ids, output_hidden_states=True)
    finally:
        handle.remove()
    assert len(out.hidden_states) == N_LAYERS + 1
    assert all(h.shape == (1, ids.shape[1], 2304) for h in out.hidden_states)
    torch.testing.assert_close(out.hidden_states[LAYER + 1], seen["out"], rtol=0, atol=0)
    # the last entry is taken after the final norm (transformers 5.x): every row has norm sqrt(2304)
    norms = out.hidden_states[-1].norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, 48.0), rtol=1e-4, atol=1e-3)


def test_tokenizer_is_gemma_style_with_a_chat_template(tokenizer: Any) -> None:
    assert type(tokenizer).__name__ == "GemmaTokenizer"
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (
        "<bos>",
        "<eos>",
        "<pad>",
        "<unk>",
    )
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (0, 1, 2)
    assert tokenizer.chat_template  # the real base-model tokenizer ships one too
    prompt = "Question: Do you consent?\n\nChoices:\n (A) Yes\n (B) No\n\nAnswer: ("
    a, b = (tokenizer(prompt + letter)["input_ids"] for letter in "AB")
    assert a[0] == tokenizer.bos_token_id
    assert a[:-1] == b[:-1]
    assert tokenizer.convert_ids_to_tokens([a[-1], b[-1]]) == ["A", "B"]
    assert tokenizer.decode(a, skip_special_tokens=True) == prompt + "A"
    assert tokenizer.decode(tokenizer("naïve ✓")["input_ids"], skip_special_tokens=True) == "naïve ✓"
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Do you consent?"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<bos><start_of_turn>user\nDo you consent?<end_of_turn>\n<start_of_turn>model\n"


def test_sae_lens_loads_gemma_scope_offline(standins: Standins, params_npz: dict[str, np.ndarray]) -> None:
    import sae_lens.loading.pretrained_sae_loaders as loaders
    from sae_lens import SAE

    calls: list[dict[str, Any]] = []
    real_download = loaders.hf_hub_download

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append({"args": args, **kwargs})
        return real_download(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loaders, "hf_hub_download", spy)
        sae = SAE.from_pretrained(GEMMA_SCOPE_RELEASE, GEMMA_SCOPE_SAE_ID, device="cpu")
    # one download, of the weights only: the config comes from sae-lens' bundled pretrained_saes.yaml
    assert calls == [
        {
            "args": (),
            "repo_id": GEMMA_SCOPE_REPO,
            "filename": "params.npz",
            "subfolder": GEMMA_SCOPE_SAE_ID,
            "force_download": False,
        }
    ]
    assert type(sae).__name__ == "JumpReLUSAE"
    assert sae.cfg.architecture() == "jumprelu"
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (2304, 16384)
    assert sae.cfg.metadata.hook_name == f"blocks.{LAYER}.hook_resid_post"
    assert sae.cfg.metadata.neuronpedia_id is None
    assert sae.cfg.apply_b_dec_to_input is False
    for key, array in params_npz.items():
        assert torch.equal(getattr(sae, key).detach(), torch.from_numpy(array)), key
    w_dec = sae.W_dec.detach()
    torch.testing.assert_close(w_dec.norm(dim=1), torch.ones(16384), rtol=0, atol=1e-5)
    neg, spurious, cos = PLANTED["anti_aligned"]
    assert float(torch.cosine_similarity(w_dec[neg], w_dec[spurious], dim=0)) == pytest.approx(cos, abs=1e-5)
    with torch.no_grad():
        at_zero = sae.encode(torch.zeros(1, 2304))[0]
    assert set(at_zero.nonzero().flatten().tolist()) == set(PLANTED["b_enc"])
    assert float(at_zero[4888]) == pytest.approx(86.20, abs=1e-4)


def test_sae_lens_with_cfg_and_sparsity_has_no_sparsity(standins: Standins) -> None:
    from sae_lens import SAE

    sae, cfg, log_sparsity = SAE.from_pretrained_with_cfg_and_sparsity(
        GEMMA_SCOPE_RELEASE, GEMMA_SCOPE_SAE_ID
    )
    assert log_sparsity is None
    assert cfg["architecture"] == "jumprelu"
    assert cfg["metadata"]["model_name"] == "gemma-2-2b"
    assert sae.cfg.d_sae == 16384


def _gemma_scope_converter(cache_dir: Path) -> Any:
    """A sae-lens ``converter`` that does what the stock Gemma 2 loader does, from ``cache_dir``."""
    from huggingface_hub import hf_hub_download
    from sae_lens.loading.pretrained_sae_loaders import get_gemma_2_config_from_hf

    def converter(
        repo_id: str,
        folder_name: str,
        device: str = "cpu",
        force_download: bool = False,
        cfg_overrides: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor], None]:
        cfg = get_gemma_2_config_from_hf(repo_id, folder_name, device, force_download, cfg_overrides)
        path = hf_hub_download(repo_id, "params.npz", subfolder=folder_name, cache_dir=cache_dir)
        with np.load(path) as data:
            state = {key: torch.from_numpy(data[key]).to(device) for key in data}
        return cfg, state, None

    return converter


def test_explicit_cache_dir_needs_no_patched_constants(
    standins: Standins, tmp_path: Path, params_npz: dict[str, np.ndarray]
) -> None:
    import huggingface_hub.constants as hf_constants
    from huggingface_hub.errors import LocalEntryNotFoundError
    from sae_lens import SAE
    from transformers import AutoModelForCausalLM, AutoTokenizer

    empty = tmp_path / "empty-hub"
    empty.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf_constants, "HF_HUB_CACHE", os.fspath(empty))
        # transformers takes cache_dir= ...
        model = AutoModelForCausalLM.from_pretrained(GEMMA2_REPO, cache_dir=standins.hf_cache)
        tok = AutoTokenizer.from_pretrained(GEMMA2_REPO, cache_dir=standins.hf_cache)
        assert model.config.hidden_size == 2304
        assert tok.chat_template
        # ... sae-lens does not: its stock loader only follows huggingface_hub.constants.HF_HUB_CACHE
        with pytest.raises(LocalEntryNotFoundError):
            SAE.from_pretrained(GEMMA_SCOPE_RELEASE, GEMMA_SCOPE_SAE_ID)
        # a converter that passes cache_dir itself loads the same SAE
        sae = SAE.from_pretrained(
            GEMMA_SCOPE_RELEASE, GEMMA_SCOPE_SAE_ID, converter=_gemma_scope_converter(standins.hf_cache)
        )
    assert type(sae).__name__ == "JumpReLUSAE"
    assert torch.equal(sae.threshold.detach(), torch.from_numpy(params_npz["threshold"]))
    assert not any(empty.iterdir())


def test_a_fresh_process_follows_the_environment(standins: Standins) -> None:
    script = textwrap.dedent(
        f"""
        import json, os
        import huggingface_hub
        from huggingface_hub import constants, hf_hub_download
        before = constants.HF_HUB_CACHE
        os.environ["HF_HUB_CACHE"] = "/nowhere"  # too late: read once, at import
        print(json.dumps({{
            "cache": constants.HF_HUB_CACHE,
            "offline": constants.HF_HUB_OFFLINE,
            "unchanged": constants.HF_HUB_CACHE == before,
            "config": hf_hub_download({GEMMA2_REPO!r}, "config.json"),
            "npz": hf_hub_download({GEMMA_SCOPE_REPO!r}, {NPZ!r}),
        }}))
        """
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(standins.env)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["cache"] == os.fspath(standins.hf_cache)
    assert found["offline"] is True
    assert found["unchanged"] is True
    assert Path(found["config"]).parent == snapshot_dir(standins.hf_cache, GEMMA2_REPO)
    assert Path(found["npz"]).is_relative_to(snapshot_dir(standins.hf_cache, GEMMA_SCOPE_REPO))


@pytest.mark.parametrize("layout", ["symlink", "copy"])
def test_write_hub_repo_layouts_resolve_offline(tmp_path: Path, layout: Literal["symlink", "copy"]) -> None:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    source = tmp_path / "weights.safetensors"
    source.write_bytes(b"not really safetensors")
    cache = tmp_path / "hub"
    files: dict[str, Path | bytes] = {"config.json": b"{}", "sub/dir/weights.safetensors": source}
    snapshot = write_hub_repo(cache, "org/name", files, layout=layout)
    repo = cache / "models--org--name"
    assert (repo / "refs" / "main").read_text() == commit_hash("org/name")  # no trailing newline
    assert snapshot == repo / "snapshots" / commit_hash("org/name")
    assert (snapshot / "config.json").is_symlink() is (layout == "symlink")
    for name in ("config.json", "sub/dir/weights.safetensors"):
        path = hf_hub_download("org/name", name, cache_dir=cache)
        assert path == os.fspath(snapshot / name)
        assert try_to_load_from_cache("org/name", name, cache_dir=cache) == path
    assert Path(path).read_bytes() == b"not really safetensors"


def _load_ab_items() -> Any:
    try:
        from sae_steer_checks.data import load_ab_items
    except ImportError:
        from sae_steer_checks.data.schema import load_ab_items
    return load_ab_items


def test_caa_files_parse_with_the_project_loader(standins: Standins) -> None:
    load_ab_items = _load_ab_items()
    generate, test = (load_ab_items(path) for path in standins.caa_files)
    assert standins.caa_files == (standins.caa_root / CAA_GENERATE, standins.caa_root / CAA_TEST)
    assert (len(generate), len(test)) == (290, 50)
    assert sum(item.matching == "A" for item in generate) == 148
    assert sum(item.matching == "A" for item in test) == 25
    questions = [item.question for item in generate + test]
    assert len(set(questions)) == 340
    assert all("\n\nChoices:\n (A) " in q and "\n (B) " in q for q in questions)
    # as the GPU tier reads them: whitespace-separated sources in SAE_STEER_CHECKS_CAA_DATA
    sources = os.environ["SAE_STEER_CHECKS_CAA_DATA"].split()
    assert sum(len(load_ab_items(source)) for source in sources) == 340


def test_project_load_model_takes_the_hub_id(standins: Standins) -> None:
    for module in ("sae_steer_checks.lm.models", "sae_steer_checks.models"):
        try:
            load_model = importlib.import_module(module).load_model
            break
        except (ImportError, AttributeError):
            continue
    else:
        pytest.fail("sae_steer_checks has no load_model in .lm.models or .models")
    loaded = load_model(GEMMA2_REPO, device="cpu", dtype=torch.float32)
    assert (loaded.n_layers, loaded.d_model) == (N_LAYERS, 2304)
    assert type(loaded.tokenizer).__name__ == "GemmaTokenizer"
