"""README's Python example runs as written (in a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "README.md has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    report = namespace["report"]
    assert isinstance(report, dict)
    assert len(report["verdicts"]) == 7
    assert (tmp_path / "readme-report" / "report.json").is_file()


def test_readme_real_model_calls_run_on_a_tiny_model() -> None:
    import sae_steer_checks
    from sae_steer_checks import CAAResult, load_dataset, split_dataset
    from tests.helpers.tiny_lm import tiny_model, word_tokenizer

    text = README.read_text(encoding="utf-8")
    prose = text[text.index("On a real model") : text.index("### Where things live")]
    calls = re.findall(r"`((?:extract_caa|make_score_fn)\(.*?\))`", prose)
    assert len(calls) == 2, calls
    # a held-out split with items matching on either letter, as ab_task without the swap needs
    items, held_out = split_dataset(load_dataset("builtin:corrigibility", max_items=8), seed=1)
    tokenizer = word_tokenizer(i.question for i in items + held_out)
    namespace = {name: getattr(sae_steer_checks, name) for name in sae_steer_checks.__all__}
    model = tiny_model("llama", len(tokenizer), n_layers=3)
    namespace |= {"model": model, "tokenizer": tokenizer, "items": items, "held_out": held_out, "layer": 1}
    caa, score_fn = (eval(call, namespace) for call in calls)
    assert isinstance(caa, CAAResult)
    assert caa.positive.shape == caa.negative.shape == (2 * len(items), 32)
    assert caa.item_tensor().shape == (2 * len(items),)
    assert score_fn(caa.vector).shape == (len(held_out),)


def test_readme_demo_table_states_the_golden_demo_figures() -> None:
    """The demo table's figures are those the real-model tier pins (``tests/realmodel/golden_demo.json``)."""
    import json

    text = README.read_text(encoding="utf-8")
    start = text.index("### What the checks find on Gemma 3 270M")
    table = text[start : text.index("\n### ", start + 1)]
    golden = json.loads((README.parent / "tests" / "realmodel" / "golden_demo.json").read_text())["checks"]
    corr = {k: v["value"] for k, v in golden["corrigibility"].items()}
    sent = {k: v["value"] for k, v in golden["sentiment"].items()}
    median = "norm.activation_norm_median"
    expected = [
        f"‖v‖ {corr['norm.steering_norm']:.1f}",
        f"median {corr['norm.activation_norm_median']:,.0f}",
        f"{100 * corr['bias.mass_in_zero']:.1f}%",
        f"{100 * corr['negative_leaning.fraction']:.1f}% of",
        f"SAE(v) cosine {corr['decompositions.sae.cosine']:.2f}",
        f"{sent['norm.steering_norm']:.0f} = {100 * sent['norm.steering_norm'] / sent[median]:.1f}%",
        f"{100 * sent['bias.mass_in_zero']:.1f}%",
        f"{100 * sent['negative_leaning.fraction']:.1f}% of",
        f"SAE(v) {sent['decompositions.sae.cosine']:.2f}",
        f"slope {sent['retention.slopes.original']:.2f}",
        f"SAE(v) keeps {100 * sent['retention.ratio_sae']:.1f}%",
        f"the signed fit (k = 32) {100 * sent['retention.ratio_signed']:.1f}%",
        f"costs {100 * sent['ablation.cost']:.1f}% of the slope",
    ]
    missing = [figure for figure in expected if figure not in table]
    assert not missing, f"README's demo table lacks the golden figures {missing}"
