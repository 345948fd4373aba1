"""The demo's time estimate (printed before it starts): it counts only the fold models still to
train, and shares them between the cores."""

from __future__ import annotations

from fathom import demo, fileio


def test_estimate_counts_only_the_fold_models_still_to_train(tmp_path):
    runs = tmp_path / "runs"
    every = demo._pending_costs(runs)
    # every member on every fold, plus the held-out-category run's folds
    assert len(every) == len(demo.DEMO_MODELS) * demo.DEMO_FOLDS + len(demo.HOLDOUT_FOLDS)
    first = demo.DEMO_MODELS[0][0]
    fileio.write_json(runs / first / "cv.json", {"map20": 0.5})
    left = demo._pending_costs(runs)
    assert len(left) == len(every) - demo.DEMO_FOLDS
    for name, _, _ in demo.DEMO_MODELS:
        fileio.write_json(runs / name / "cv.json", {"map20": 0.5})
    fileio.write_json(runs / f"{demo.HOLDOUT_MODEL}-holdout" / "cv.json", {"map20": 0.5})
    assert demo._pending_costs(runs) == []
    amp = "off"
    full, part = demo.estimate_seconds(every, 2, amp), demo.estimate_seconds(left, 2, amp)
    assert full > part > demo.estimate_seconds([], 2, amp) == demo.REST_CPU_S


def test_estimate_shares_the_fold_models_between_the_cores():
    costs = demo._pending_costs(demo.Path("/nonexistent"))
    rest = demo.REST_CPU_S
    one, two = (demo.estimate_seconds(costs, n, "off") - rest for n in (1, 2))
    assert two == one / 2
    # more cores than fold models: each model still takes its own time
    assert demo.estimate_seconds(costs[:1], 8, "off") == demo.estimate_seconds(costs[:1], 1, "off")
    # bf16 is cheaper per step where the CPU has it
    assert demo.estimate_seconds(costs, 2, "bf16") < demo.estimate_seconds(costs, 2, "off")


def test_cpu_amp_is_a_config_value():
    from fathom.config import load_config

    amp = demo.cpu_amp()
    assert amp in ("bf16", "off")
    assert load_config("default", [f"amp={amp}"]).amp == amp
