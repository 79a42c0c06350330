"""cli.commands: main(argv) end to end, each command on the planted world and tiny models, one-line errors."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
from matplotlib.image import imread
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sae_steer_checks.cli.commands import build_parser, main
from sae_steer_checks.data.schema import bundled_path, load_ab_items, split_dataset
from sae_steer_checks.lm.models import default_device
from sae_steer_checks.report.plots import PLOT_FILES
from sae_steer_checks.report.schema import SCHEMA_VERSION, validate_report
from sae_steer_checks.steering import tasks
from sae_steer_checks.synthetic import WorldConfig, build_world
from tests.helpers.tiny_lm import tiny_model, word_tokenizer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STABLE_KEYS = {
    "schema_version",
    "provenance",
    "norm",
    "bias",
    "negative_leaning",
    "aligned_pairs",
    "decompositions",
    "retention",
    "verdicts",
}
COMMANDS = ("run", "diagnose", "extract", "train-sae", "demo", "render")


def _check_report_folder(out: Path) -> dict[str, Any]:
    """Assert the folder holds a valid report with resolvable image links; return report.json."""
    text = (out / "report.json").read_text()
    report = json.loads(text)
    assert text == json.dumps(report, sort_keys=True, indent=2) + "\n"
    assert report.keys() >= STABLE_KEYS
    validate_report(report)
    assert report["schema_version"] == SCHEMA_VERSION
    markdown = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert links, "the Markdown embeds no plot"
    for link in links:
        image = out / link
        assert image.read_bytes()[:8] == PNG_SIGNATURE
        pixels = imread(image)
        assert pixels.ndim == 3
        assert pixels.shape[0] > 200
        assert pixels.shape[1] > 300
    assert sorted(p.name for p in out.iterdir()) == sorted(["report.json", "report.md", *links])
    return report


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- the parser -------------------------------------------------------------------------------


def test_help_reads_well_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for command in COMMANDS:
        assert command in top
    for command in COMMANDS:
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "--out" in text
        assert "--quiet" in text
        assert text.count("\n") > 8


def test_usage_errors_are_one_line_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    _one_line_error(capsys, "required: COMMAND")
    assert main(["diagnose", "--out", "x"]) == 2
    _one_line_error(capsys, "the following arguments are required: --sae, --vector, --pos, --neg")
    assert main(["run", "--layer", "one"]) == 2
    _one_line_error(capsys, "--layer", "invalid int value")


def test_negative_multipliers_parse() -> None:
    args = build_parser().parse_args(
        ["run", "--model", "m", "--sae", "s", "--dataset", "d", "--layer", "1", "--out", "o",
         "--multipliers", "-2", "-1", "0", "1.5"]
    )  # fmt: skip
    assert args.multipliers == [-2.0, -1.0, 0.0, 1.5]


# --- the planted world -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "report"
    assert main(["demo", "--planted", "--out", str(out), "--quiet"]) == 0
    return out


def test_demo_writes_a_full_report_on_the_planted_world(demo_out: Path) -> None:
    report = _check_report_folder(demo_out)
    assert sorted(p.name for p in demo_out.glob("*.png")) == sorted(PLOT_FILES.values())
    truth = build_world(WorldConfig(seed=0)).truth
    prov = report["provenance"]
    for key in ("model", "sae_source", "layer", "dataset", "versions", "seed", "device", "dtype"):
        assert key in prov
    assert prov["seed"] == 0
    assert prov["device"] == str(default_device())  # --device not given: CUDA when available
    assert prov["dtype"] == "float32"
    assert report["norm"]["percentile"] < 1.0
    top_zero = {f["feature"] for f in report["bias"]["top_features_zero"]}
    assert top_zero == set(truth.bias_features)
    found = {(p["feature"], p["partner"]) for p in report["aligned_pairs"]["pairs"]}
    assert {tuple(sorted((i, j))) for i, j, _ in truth.pairs} <= {tuple(sorted(p)) for p in found}
    assert report["retention"]["ratio_signed"] > 0.9 > report["retention"]["ratio_sae"]


def test_demo_markdown_has_one_verdict_per_mechanism(demo_out: Path) -> None:
    markdown = (demo_out / "report.md").read_text()
    verdict = markdown.split("## Verdict")[1].split("\n## ")[0]
    assert len([line for line in verdict.splitlines() if line.startswith("- **")]) == 7
    assert "The encoder bias decides" in verdict


def test_demo_is_quiet_and_refuses_to_overwrite(demo_out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (demo_out / "report.json").read_bytes()
    assert main(["demo", "--planted", "--out", str(demo_out), "-q"]) == 2
    _one_line_error(capsys, f"--out {demo_out}", "not empty; pass --force")
    assert (demo_out / "report.json").read_bytes() == before


def test_render_redraws_a_report_from_its_json_alone(
    demo_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copyfile(demo_out / "report.json", alone / "report.json")
    assert main(["render", str(alone)]) == 0
    assert f"to {alone}" in capsys.readouterr().out
    _check_report_folder(alone)
    for name in ["report.md", *PLOT_FILES.values()]:
        assert (alone / name).read_bytes() == (demo_out / name).read_bytes(), name
    other = tmp_path / "other"
    assert main(["render", str(alone), "--out", str(other), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert sorted(p.name for p in other.iterdir()) == sorted(p.name for p in alone.iterdir())
    assert main(["render", str(alone), "--out", str(other), "-q"]) == 2
    _one_line_error(capsys, f"--out {other}", "not empty; pass --force")
    assert main(["render", str(alone), "--out", str(other), "--force", "-q"]) == 0


def test_render_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(tmp_path / "nowhere")]) == 2
    _one_line_error(capsys, "render: error:", "nowhere", "not a folder")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "report.json").write_text("{}")
    assert main(["render", str(tmp_path)]) == 2
    _one_line_error(capsys, "report.json: not found", "subfolders sub")
    assert main(["render", str(tmp_path / "sub")]) == 2
    _one_line_error(capsys, "report.json: not a valid report", "missing")
    (tmp_path / "sub" / "report.json").write_text("{")
    assert main(["render", str(tmp_path / "sub")]) == 2
    _one_line_error(capsys, "report.json: not valid JSON")
    assert (tmp_path / "sub" / "report.json").read_text() == "{"


@pytest.fixture(scope="module")
def planted_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("planted")
    world = build_world(WorldConfig(d_model=64, d_sae=128, seed=3))
    world.sae.save_model(root / "sae")
    gen = torch.Generator().manual_seed(3)
    pos, neg = world.sample_contrastive(64, gen)
    save_file({"vector": (pos - neg).mean(0)}, str(root / "vector.safetensors"))
    save_file({"activations": pos}, str(root / "pos.safetensors"))
    save_file({"activations": neg}, str(root / "neg.safetensors"))
    save_file({"activations": world.sample_activations(256, gen)}, str(root / "acts.safetensors"))
    return {"root": root, **{k: root / f"{k}.safetensors" for k in ("vector", "pos", "neg", "acts")}}


def _diagnose(files: dict[str, Path], out: Path, *extra: str, **override: str) -> int:
    args = {"--sae": str(files["root"] / "sae"), "--vector": str(files["vector"]),
            "--pos": str(files["pos"]), "--neg": str(files["neg"]), "--out": str(out)}  # fmt: skip
    args.update({f"--{k}": v for k, v in override.items()})
    return main(["diagnose", *[x for kv in args.items() for x in kv], "-q", *extra])


def test_diagnose_is_deterministic_and_reports_no_retention(
    planted_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _diagnose(planted_files, tmp_path / "a", "--activations", str(planted_files["acts"])) == 0
    assert _diagnose(planted_files, tmp_path / "b", "--activations", str(planted_files["acts"])) == 0
    assert capsys.readouterr().out == ""
    report = _check_report_folder(tmp_path / "a")
    assert (tmp_path / "a" / "report.json").read_bytes() == (tmp_path / "b" / "report.json").read_bytes()
    assert report["retention"] is None
    assert "Not run: no behaviour score was given." in (tmp_path / "a" / "report.md").read_text()
    inputs = report["provenance"]["inputs"]
    assert set(inputs) == {"vector", "pos", "neg", "activations"}
    assert all(len(v["sha256"]) == 64 for v in inputs.values())
    assert report["provenance"]["activation_source"] == "activations"


def test_diagnose_force_replaces_the_report(planted_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assert _diagnose(planted_files, out, "--force") == 0
    assert not (out / "stale.txt").exists()
    assert (out / "report.json").is_file()


def _bad_tensor(root: Path, name: str, **tensors: torch.Tensor) -> str:
    path = root / name
    save_file(tensors, str(path))
    return str(path)


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("missing_vector", ("--vector", "file not found")),
        ("folder_as_vector", ("--vector", "expected a file, got a folder")),
        ("garbage_pos", ("--pos", "not a readable safetensors file")),
        ("wrong_key", ("--vector", "no tensor under key 'vector'")),
        ("wrong_shape", ("--vector", "must have shape [d], got [2, 64]")),
        ("width_mismatch", ("--vector", "has width 10 but the SAE expects d_in=64")),
        ("nan_vector", ("--vector", "NaN or infinite")),
        ("inf_neg", ("--neg", "NaN or infinite")),
        ("unpaired", ("--neg", "must pair up row by row")),
        ("activations_width", ("--activations", "has width 3")),
        ("sae_missing", ("--sae", "not a known sae-lens release/id")),
        ("sae_unknown_id", ("--sae", "unknown id 'layer_99/none'")),
        ("bad_device", ("--device", "not a torch device")),
    ],
)
def test_every_bad_diagnose_input_is_one_line_exit_2(
    planted_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    needles: tuple[str, ...],
) -> None:
    root = tmp_path
    extra: list[str] = []
    override: dict[str, str] = {}
    if case == "missing_vector":
        override["vector"] = str(root / "none.safetensors")
    elif case == "folder_as_vector":
        override["vector"] = str(root)
    elif case == "garbage_pos":
        (root / "g.safetensors").write_bytes(b"\x00" * 40)
        override["pos"] = str(root / "g.safetensors")
    elif case == "wrong_key":
        override["vector"] = _bad_tensor(root, "k.safetensors", steering=torch.zeros(64))
    elif case == "wrong_shape":
        override["vector"] = _bad_tensor(root, "s.safetensors", vector=torch.zeros(2, 64))
    elif case == "width_mismatch":
        override["vector"] = _bad_tensor(root, "w.safetensors", vector=torch.zeros(10))
    elif case == "nan_vector":
        override["vector"] = _bad_tensor(root, "n.safetensors", vector=torch.full((64,), math.nan))
    elif case == "inf_neg":
        bad = torch.zeros(64, 64)
        bad[3, 5] = math.inf
        override["neg"] = _bad_tensor(root, "i.safetensors", activations=bad)
    elif case == "unpaired":
        override["neg"] = _bad_tensor(root, "u.safetensors", activations=torch.zeros(5, 64))
    elif case == "activations_width":
        extra = ["--activations", _bad_tensor(root, "a.safetensors", activations=torch.zeros(4, 3))]
    elif case == "sae_missing":
        override["sae"] = str(root / "no-sae-here")
    elif case == "sae_unknown_id":
        override["sae"] = "gemma-scope-2b-pt-res/layer_99/none"
    elif case == "bad_device":
        override["device"] = "toaster"
    out = root / "out"
    assert _diagnose(planted_files, out, *extra, **override) == 2
    line = _one_line_error(capsys, "sae-steer-checks diagnose: error:", *needles)
    assert len(line) < 400
    assert not out.exists()
    assert [p.name for p in root.iterdir() if p.name.startswith(".out")] == []


# --- tiny real models ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3-block Llama with a word-level tokenizer saved to disk, and a 32-wide sae-lens SAE."""
    from sae_lens import StandardSAE, StandardSAEConfig

    root = tmp_path_factory.mktemp("tiny")
    items = json.loads(bundled_path("corrigibility").read_text())[:8]
    tok = word_tokenizer(i["question"] for i in items)
    model = tiny_model("llama", len(tok), n_layers=3)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=64))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.3)
        sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(64, 32), dim=1))
    sae.save_model(root / "sae")
    return {"root": root, "model": root / "model", "sae": root / "sae"}


def _run(tiny: dict[str, Path], out: Path, **override: str) -> int:
    args = {"--model": str(tiny["model"]), "--sae": str(tiny["sae"]),
            "--dataset": "builtin:corrigibility", "--layer": "1", "--out": str(out),
            "--max-pairs": "8"}  # fmt: skip
    args.update({f"--{k.replace('_', '-')}": v for k, v in override.items()})
    return main(["run", *[x for kv in args.items() for x in kv], "-q"])


@pytest.fixture(scope="module")
def tiny_run(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run`` on the tiny model with every default (8 items, layer 1)."""
    out = tmp_path_factory.mktemp("tiny-run") / "out"
    assert _run(tiny, out) == 0
    return out


def test_run_on_a_tiny_model_reports_retention(tiny: dict[str, Path], tiny_run: Path) -> None:
    report = _check_report_folder(tiny_run)
    prov = report["provenance"]
    assert prov["model"] == str(tiny["model"])
    assert prov["layer"] == 1
    assert prov["dataset"] == "builtin:corrigibility"
    assert len(prov["dataset_sha256"]) == 64
    assert prov["n_items"] == 8
    assert prov["behaviour"]["kind"] == "ab"
    assert set(report["retention"]["slopes"]) == {"original", "sae", "signed", "learned"}
    assert len(report["retention"]["multipliers"]) == 5
    assert report["learned"]["training"]["steps"] == 10  # every run learns a vector by default
    assert prov["behaviour"]["steer_positions"] == "answer"  # CAA's convention by default, and said so
    assert "Steered positions: answer" in (tiny_run / "report.md").read_text()


def test_run_steers_every_position_when_asked(tiny: dict[str, Path], tiny_run: Path, tmp_path: Path) -> None:
    assert _run(tiny, tmp_path / "all", steer_positions="all") == 0
    everywhere = json.loads((tmp_path / "all" / "report.json").read_text())
    answer = json.loads((tiny_run / "report.json").read_text())  # the default: answer positions
    assert everywhere["provenance"]["behaviour"]["steer_positions"] == "all"
    assert "every position" in everywhere["provenance"]["behaviour"]["steer_positions_rule"]
    slopes = everywhere["retention"]["slopes"], answer["retention"]["slopes"]
    assert slopes[0]["original"] != pytest.approx(slopes[1]["original"], rel=1e-3)  # another convention
    assert everywhere["norm"] == answer["norm"]  # only the behaviour sweep depends on it
    assert main(["run", "--steer-positions", "prompt"]) == 2


def test_run_learns_a_vector_by_default(tiny: dict[str, Path], tiny_run: Path, tmp_path: Path) -> None:
    learned = json.loads((tiny_run / "report.json").read_text())  # the default: 10 steps, 48 items
    section = learned["learned"]  # learned on the training items, swept beside v
    assert section["training"]["n_train_items"] == 6
    ms = learned["retention"]["multipliers"]
    assert section["training"]["multipliers"] == [min(ms), max(ms)]  # the sweep's extremes
    assert 0 < section["n_support"] <= 32
    assert section["norm"] == pytest.approx(learned["norm"]["steering_norm"], rel=1e-5)
    assert "ratio_learned" in learned["retention"]
    assert learned["provenance"]["learning"] == {"steps": 10, "max_items": 48}
    read: list[list[Any]] = []
    real_task = tasks.training_task

    def spy(tokenizer: Any, data: Any, **kwargs: Any) -> Any:
        read.append(list(data))
        return real_task(tokenizer, data, **kwargs)

    with mock.patch.object(tasks, "training_task", spy):
        for name in ("few", "again"):
            assert _run(tiny, tmp_path / name, learn_items="4", learn_steps="2") == 0
    few = json.loads((tmp_path / "few" / "report.json").read_text())["learned"]["training"]
    assert (few["n_train_items"], few["steps"]) == (4, 2)  # a seeded draw of 4 of the 6 training items
    train, held_out = split_dataset(load_ab_items("corrigibility")[:8], seed=0)
    assert read[0] == read[1]  # the same draw on a rerun
    assert len(read[0]) == 4
    assert all(item in train for item in read[0])  # training items only: never a held-out one
    assert not any(item in held_out for item in read[0])
    assert _run(tiny, tmp_path / "plain", learn_steps="0") == 0
    plain = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert plain["learned"] is None
    assert set(plain["retention"]["slopes"]) == {"original", "sae", "signed"}
    assert "ratio_learned" not in plain["retention"]
    for name in ("original", "sae", "signed"):  # the learned vector only joins the sweep
        assert plain["retention"]["slopes"][name] == pytest.approx(learned["retention"]["slopes"][name])
    assert "Not run: `run --learn-steps 0` was given" in (tmp_path / "plain" / "report.md").read_text()


def _extract(tiny: dict[str, Path], out: Path, *extra: str, **override: str) -> int:
    args = {"--model": str(tiny["model"]), "--dataset": "builtin:corrigibility", "--layer": "2",
            "--max-pairs": "6", "--out": str(out)}  # fmt: skip
    args.update({f"--{k.replace('_', '-')}": v for k, v in override.items()})
    return main(["extract", *[x for kv in args.items() for x in kv], "-q", *extra])


@pytest.fixture(scope="module")
def tiny_extract(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``extract`` on the tiny model with every default (6 items, layer 2)."""
    out = tmp_path_factory.mktemp("tiny-extract") / "x"
    assert _extract(tiny, out) == 0
    return out


def test_extract_then_diagnose(tiny: dict[str, Path], tiny_extract: Path, tmp_path: Path) -> None:
    x = tiny_extract
    names = sorted(p.name for p in x.iterdir())
    assert names == [
        "extract.json", "item_ids.safetensors", "neg.safetensors", "pos.safetensors", "vector.safetensors"
    ]  # fmt: skip
    with safe_open(str(x / "item_ids.safetensors"), framework="pt") as handle:
        assert list(handle.keys()) == ["item_ids"]
        item_ids = handle.get_tensor("item_ids")
    pos = load_file(str(x / "pos.safetensors"))["activations"]
    assert item_ids.dtype == torch.int64
    assert list(item_ids.shape) == [pos.shape[0]] == [12]  # 6 items, each also with its choices swapped
    assert item_ids.tolist() == [i for i in range(6) for _ in range(2)]
    record = json.loads((x / "extract.json").read_text())
    assert record["prompt_format"] == "plain"
    assert record["split"] == "all"
    assert record["extraction"]["n_items"] == 6
    assert record["unit"].startswith("A/B item")
    files = {k: x / f"{k}.safetensors" for k in ("vector", "pos", "neg", "item_ids")}
    assert _diagnose({"root": tiny["root"], **files}, tmp_path / "r") == 0
    report = _check_report_folder(tmp_path / "r")
    assert report["provenance"]["d_model"] == 32
    assert report["provenance"]["unit"] == "each row is an item (no --item-ids)"
    assert (
        _diagnose({"root": tiny["root"], **files}, tmp_path / "i", "--item-ids", str(files["item_ids"])) == 0
    )
    prov = json.loads((tmp_path / "i" / "report.json").read_text())["provenance"]
    assert prov["unit"] == f"item ids from {files['item_ids']}"
    assert set(prov["inputs"]) == {"vector", "pos", "neg", "item_ids"}


@pytest.fixture(scope="module")
def chat_model(tiny: dict[str, Path]) -> Path:
    """The tiny model with a chat template on its tokenizer (its name says base, so auto stays plain)."""
    from transformers import AutoTokenizer

    folder = tiny["root"] / "templated-model"
    shutil.copytree(tiny["model"], folder)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = (
        "{% for m in messages %}<bos> {{ m['role'] }} : {{ m['content'] }} <eos>{% endfor %}"
        "{% if add_generation_prompt %}<bos> assistant :{% endif %}"
    )
    tok.save_pretrained(folder)
    return folder


def test_extract_honours_the_prompt_format(
    tiny: dict[str, Path], chat_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vectors = {}
    for fmt in ("auto", "plain", "chat"):
        assert _extract(tiny, tmp_path / fmt, model=str(chat_model), prompt_format=fmt) == 0
        record = json.loads((tmp_path / fmt / "extract.json").read_text())
        assert record["prompt_format"] == ("chat" if fmt == "chat" else "plain")
        vectors[fmt] = load_file(str(tmp_path / fmt / "vector.safetensors"))["vector"]
    assert torch.equal(vectors["auto"], vectors["plain"])
    assert not torch.allclose(vectors["chat"], vectors["plain"])
    assert _extract(tiny, tmp_path / "no-template", prompt_format="chat") == 2
    _one_line_error(capsys, "sae-steer-checks extract: error: --prompt-format chat", "chat template")
    assert not (tmp_path / "no-template").exists()


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("length", ("--item-ids", "has 5 ids but --pos has 12 rows", "one integer id per row of --pos")),
        ("float", ("--item-ids", "torch.float32", "one integer id per row of --pos")),
        ("shape", ("--item-ids", "has shape [6, 2]", "one integer id per row of --pos")),
        ("key", ("--item-ids", "no tensor under key 'item_ids'", "one integer id per row")),
        ("missing", ("--item-ids", "file not found")),
    ],
)
def test_bad_item_ids_are_one_line_exit_2(
    tiny: dict[str, Path],
    tiny_extract: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    needles: tuple[str, ...],
) -> None:
    files = {k: tiny_extract / f"{k}.safetensors" for k in ("vector", "pos", "neg")}
    tensors = {
        "length": {"item_ids": torch.arange(5)},
        "float": {"item_ids": torch.zeros(12)},
        "shape": {"item_ids": torch.zeros(6, 2, dtype=torch.long)},
        "key": {"ids": torch.arange(12)},
    }
    bad = str(tmp_path / "none.safetensors")
    if case in tensors:
        bad = _bad_tensor(tmp_path, "ids.safetensors", **tensors[case])
    out = tmp_path / "out"
    assert _diagnose({"root": tiny["root"], **files}, out, "--item-ids", bad) == 2
    line = _one_line_error(capsys, "sae-steer-checks diagnose: error:", *needles)
    assert len(line) < 400
    assert not out.exists()


DIAGNOSTIC_SECTIONS = ("norm", "bias", "negative_leaning", "aligned_pairs", "decompositions")


def _assert_close(a: Any, b: Any, where: str = "") -> None:
    """Equal JSON values, numbers to float tolerance."""
    if isinstance(a, dict):
        assert isinstance(b, dict), where
        assert sorted(a) == sorted(b), where
        for key in a:
            _assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list), where
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-6), where
    else:
        assert a == b, where


def test_run_equals_extract_then_diagnose_with_item_ids(tiny: dict[str, Path], tmp_path: Path) -> None:
    from sae_steer_checks.cli.inputs import load_checked_model
    from sae_steer_checks.lm.activations import text_activations

    assert _run(tiny, tmp_path / "run", seed="3") == 0
    argv = ["--split", "train", "--seed", "3"]
    assert _extract(tiny, tmp_path / "x", *argv, layer="1", max_pairs="8") == 0
    loaded = load_checked_model(
        str(tiny["model"]), 1, gguf_file=None, device=torch.device("cpu"), dtype=torch.float32
    )
    assert loaded.tokenizer is not None
    acts = text_activations(loaded.model, loaded.tokenizer, 1, seed=3).activations  # run's norm-check text
    save_file({"activations": acts}, str(tmp_path / "acts.safetensors"))
    files = {k: tmp_path / "x" / f"{k}.safetensors" for k in ("vector", "pos", "neg", "item_ids")}
    extra = ["--item-ids", str(files["item_ids"]), "--activations", str(tmp_path / "acts.safetensors")]
    assert _diagnose({"root": tiny["root"], **files}, tmp_path / "diag", *extra, seed="3") == 0
    ran = json.loads((tmp_path / "run" / "report.json").read_text())
    diagnosed = json.loads((tmp_path / "diag" / "report.json").read_text())
    record = json.loads((tmp_path / "x" / "extract.json").read_text())
    _assert_close(record["extraction"], ran["provenance"]["extraction"], "extraction")
    assert record["extraction"]["n_items"] == 6  # three quarters of the 8 items
    assert record["prompt_format"] == ran["provenance"]["prompt_format"]
    assert ran["provenance"]["unit"] == record["unit"]
    assert ran["provenance"]["unit"].startswith("A/B item")
    sections = set(ran) - {"provenance", "retention", "ablation", "learned", "verdicts", "figures"}
    assert sections >= set(DIAGNOSTIC_SECTIONS)
    assert set(diagnosed) == set(ran)
    for section in sorted(sections):  # the diagnostics and their nulls
        _assert_close(ran[section], diagnosed[section], section)
    assert diagnosed["retention"] is None
    assert diagnosed["ablation"] is None  # it steers too: no behaviour score, no ablation
    assert diagnosed["learned"] is None  # learning needs the model
    assert diagnosed["figures"]["retention"] is None  # the plotted numbers, retention's apart
    _assert_close({**ran["figures"], "retention": None}, diagnosed["figures"], "figures")
    verdicts = {v["mechanism"]: v for v in diagnosed["verdicts"]}
    compared = 0
    for v in ran["verdicts"]:
        if v["status"] == "not run" or verdicts[v["mechanism"]]["status"] == "not run":
            continue  # retention and ablation: run scores held-out items, diagnose has no score
        _assert_close(v, verdicts[v["mechanism"]], v["mechanism"])
        compared += 1
    assert compared == 5


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ({"model": "./no/such/model"}, ("--model ./no/such/model", "no model directory")),
        ({"layer": "7"}, ("--layer 7", "must be in 0..2")),
        ({"dataset": "builtin:nope"}, ("--dataset builtin:nope", "no bundled set 'nope'")),
        ({"dataset": "MISSING"}, ("--dataset", "file not found")),
        ({"dataset": "NOT_AB"}, ("--dataset", "item 1", "answer_matching_behavior")),
        ({"max_pairs": "1"}, ("--max-pairs 1", "at least 2")),
        ({"multipliers": "1"}, ("--multipliers", "two distinct values")),
        ({"learn_steps": "-1"}, ("--learn-steps", "integer >= 0")),
        ({"learn_items": "0"}, ("--learn-items", "integer >= 1")),
    ],
)
def test_every_bad_run_input_is_one_line_exit_2(
    tiny: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    override: dict[str, str],
    needles: tuple[str, ...],
) -> None:
    if override.get("dataset") == "MISSING":
        override = {"dataset": str(tmp_path / "missing.json")}
    elif override.get("dataset") == "NOT_AB":
        good = {"question": "Q?\n (A) yes\n (B) no", "answer_matching_behavior": "(A)",
                "answer_not_matching_behavior": "(B)"}  # fmt: skip
        (tmp_path / "bad.json").write_text(json.dumps([good, {"question": "Q2?"}]))
        override = {"dataset": str(tmp_path / "bad.json")}
    assert _run(tiny, tmp_path / "out", **override) == 2
    _one_line_error(capsys, "sae-steer-checks run: error:", *needles)
    assert not (tmp_path / "out").exists()


def test_run_refuses_an_sae_of_another_width(
    tiny: dict[str, Path], planted_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tiny, tmp_path / "out", sae=str(planted_files["root"] / "sae")) == 2
    _one_line_error(capsys, "--sae", "d_in=64 does not match the residual width 32")


def test_a_zero_vector_gets_a_defined_report(planted_files: dict[str, Path], tmp_path: Path) -> None:
    zero = _bad_tensor(tmp_path, "zero.safetensors", vector=torch.zeros(64))
    assert _diagnose(planted_files, tmp_path / "out", vector=zero) == 0
    report = _check_report_folder(tmp_path / "out")
    assert report["norm"]["steering_norm"] == 0.0
    top_zero = [f["feature"] for f in report["bias"]["top_features_zero"]]
    assert [f["feature"] for f in report["bias"]["top_features_vector"]] == top_zero


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--width", "0"], ("--width must be a positive int, got 0",)),
        (["--model", "./no/such/model"], ("--model ./no/such/model", "no model directory")),
    ],
)
def test_bad_train_sae_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: tuple[str, ...]
) -> None:
    out = tmp_path / "sae"
    assert main(["train-sae", "--layer", "1", "--out", str(out), "-q", *argv]) == 2
    _one_line_error(capsys, "sae-steer-checks train-sae: error:", *needles)
    assert list(tmp_path.iterdir()) == []
