from __future__ import annotations

import argparse

HELP = "run the whole flow on a synthetic competition, on CPU, and score it"
DESCRIPTION = """Run fathom end to end with no download: write a synthetic competition, assign
folds, train two small backbones over every fold, stitch their OOF, train one held-out-category
run (to choose the osd scorer honestly), tune the ensemble, thresholds and osd scorer, predict
the eval images, write validated submissions, and score them against the hidden truth beside
the frequency prior. Everything goes under WORKDIR (default demo/); rerunning reuses every
finished stage (delete WORKDIR to start over).

With --kind folder it runs the single-label folder study instead (under WORKDIR/folder/): a
synthetic 31-class folder dataset, a scratch CNN vs a frozen pretrained backbone vs a
two-stage fine-tune, `fathom compare` on the three, and scored `id,label` submissions (~4 min
on CPU). No ImageNet weights are downloaded: without --weights the transfer backbone
(MobileNetV3-Small x0.5) is pretrained by fathom itself on its synthetic FathomNet
competition (multi-label, 290 categories) and loaded from that file; with --weights the
transfer runs use EfficientNet-B0 and the given ImageNet weights.

example:  fathom demo --workdir demo
example:  fathom demo --kind folder"""

# The demo's two backbones: the engine's quick CPU configs (fathom/configs/*.toml), both from
# random init (no download): the scratch CNN at 32 px and timm's MobileNetV3-Small (x0.5) at
# 64 px, 4 epochs each, the head started at the class frequencies.
DEMO_MODELS = (
    ("cnn", "default", ()),
    ("mobilenet", "mobilenet", ()),
)
# 3 folds, not 5: each fold model trains on 2/3 of the images and there are fewer of them,
# which halves the training time of the demo.
DEMO_FOLDS = 3
# Training settings every demo run shares (on top of the engine's `default` config).
DEMO_TRAIN = ()
# The held-out-category run costs a training run: one model on one fold only.
HOLDOUT_MODEL = "mobilenet"
HOLDOUT_FOLDS = (0,)
HOLDOUT_SHARE = 0.2  # about this share of training images hold a held-out category


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir", default="demo", help="folder for everything the demo writes (default demo)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic competition (default 0)"
    )
    p.add_argument(
        "--kind",
        choices=["fathomnet", "folder"],
        default="fathomnet",
        help="fathomnet: the multi-label flow (default); folder: the single-label folder study",
    )
    p.add_argument(
        "--weights",
        help="--kind folder: ImageNet weights for efficientnet_b0, a file or `hf` (the Hugging Face cache); default: none (a MobileNetV3 pretrained by fathom on its synthetic FathomNet competition)",
    )


def _fathom(*argv) -> None:
    """Run one fathom subcommand in-process, exactly as the command line would."""
    from fathom.cli import build_parser
    from fathom.errors import FathomError

    args = build_parser().parse_args([str(a) for a in argv])
    code = args._run(args)
    if code:
        raise FathomError(f"`fathom {' '.join(map(str, argv))}` exited with status {code}")


def _stage(n: int, total: int, text: str) -> None:
    print(f"\n[{n}/{total}] {text}", flush=True)


def run_multilabel(work, seed: int = 0):
    """The multi-label flow on a synthetic FathomNet-like competition; returns the score table
    (a DataFrame). A `--kind` switch can call a single-label flow beside it."""
    import time
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from fathom import fileio
    from fathom import osd as osd_lib
    from fathom.commands.prior import write_prior
    from fathom.commands.submit import ensemble_eval, eval_osd, make, read_tuning
    from fathom.commands.tune import print_tuning, tune_runs
    from fathom.data.coco import open_competition, read_split
    from fathom.data.folds import assign_folds, spread_report
    from fathom.metrics import sauc
    from fathom.score import score_files
    from fathom.synth.fathomnet import TRUTH_FILE, SynthConfig, generate

    t0 = time.perf_counter()
    total = 9
    work = Path(work)
    comp_dir, runs, subs = work / "competition", work / "runs", work / "submissions"
    common = [
        *DEMO_TRAIN,
        f"competition={comp_dir}",
        f"folds={work / 'folds' / f'mlskf{DEMO_FOLDS}.csv'}",
        f"n_folds={DEMO_FOLDS}",
        f"cache_dir={work / 'cache'}",
        "device=cpu",
    ]

    _stage(1, total, "synth: a synthetic competition in the Kaggle layout")
    if not (comp_dir / "category_key.csv").exists():
        generate(comp_dir, SynthConfig(seed=seed))
        print(f"wrote {comp_dir}")
    else:
        print(f"reusing {comp_dir}")

    _stage(2, total, f"folds: multilabel-stratified {DEMO_FOLDS}-fold")
    folds_path = work / "folds" / f"mlskf{DEMO_FOLDS}.csv"
    train = read_split(open_competition(comp_dir), "train")
    if not folds_path.exists():
        folds = assign_folds(train, DEMO_FOLDS, 42)
        fileio.write_csv(folds_path, folds)
        print(spread_report(train, folds, DEMO_FOLDS, 42).to_string(index=False))
    else:
        print(f"reusing {folds_path}")

    _stage(
        3,
        total,
        f"train + oof: configs {', '.join(c for _, c, _ in DEMO_MODELS)} over all {DEMO_FOLDS} folds",
    )
    for name, config, extra in DEMO_MODELS:
        if (runs / name / "cv.json").exists():
            print(f"reusing {runs / name}")
            continue
        _fathom("train", config, *common, *extra, "--name", name, "--runs", runs)
        _fathom("oof", runs / name)

    _stage(
        4,
        total,
        f"held-out-category run: {HOLDOUT_MODEL} on folds {HOLDOUT_FOLDS}, some categories unseen",
    )
    held_name = f"{HOLDOUT_MODEL}-holdout"
    held = osd_lib.choose_holdout_categories(
        train["categories"].tolist(), share=HOLDOUT_SHARE, seed=seed
    )
    if not (runs / held_name / "cv.json").exists():
        config, extra = next((c, e) for n, c, e in DEMO_MODELS if n == HOLDOUT_MODEL)
        hold = "holdout_categories=" + ",".join(map(str, held))
        for k in HOLDOUT_FOLDS:
            _fathom(
                "train",
                config,
                *common,
                *extra,
                hold,
                "--fold",
                k,
                "--name",
                held_name,
                "--runs",
                runs,
            )
        _fathom("oof", runs / held_name)
    else:
        print(f"reusing {runs / held_name}")

    _stage(
        5,
        total,
        "tune: ensemble weights (the frequency prior may join), label-set thresholds, osd scorer",
    )
    names = [n for n, _, _ in DEMO_MODELS]
    tune_path = runs / "tune.json"
    if not tune_path.exists():
        result = tune_runs([runs / n for n in names], [runs / held_name], comp_dir, prior=True)
        result["path"] = str(tune_path)
        fileio.write_json(tune_path, result)
    tuning = read_tuning(tune_path)
    print_tuning(tuning)
    scorer = tuning["osd"]["scorer"]

    _stage(6, total, "predict: every fold's best checkpoint on the eval images")
    preds = work / "predictions"
    for name in names:
        if not (preds / name / "eval.npz").exists():
            _fathom(
                "predict",
                runs / name,
                "--comp",
                comp_dir,
                "--out",
                preds / name,
                "--cache-dir",
                work / "cache",
                "--device",
                "cpu",
            )
        else:
            print(f"reusing {preds / name / 'eval.npz'}")

    _stage(7, total, "submit: validated CSVs + manifests (each model alone, and the ensemble)")
    entries = []
    for name in names:  # one model alone: same osd scorer, its own tuning
        path = runs / f"tune-{name}.json"
        if not path.exists():
            solo = tune_runs([runs / name], [runs / held_name], comp_dir, osd_name=scorer)
            solo["path"] = str(path)
            fileio.write_json(path, solo)
        entries.append((name, read_tuning(path)))
    entries.append(("ensemble", tuning))
    for sub_name, tun in entries:
        if (subs / f"{sub_name}.csv").exists():
            print(f"reusing {subs / sub_name}.csv")
            continue
        make(tun, sub_name, comp_dir, preds, None, subs)
        print(f"wrote {subs / sub_name}.csv and .json")
    prior_path = subs / "prior.csv"
    if not prior_path.exists():
        write_prior(comp_dir, prior_path)

    _stage(8, total, "score against the hidden eval truth (the only stage that reads it)")
    truth_path = comp_dir / TRUTH_FILE
    rows = []
    for sub_name, tun in entries:
        s = score_files(subs / f"{sub_name}.csv", truth_path)
        ens = tun["ensemble"]
        rows.append(
            {
                "model": sub_name,
                "CV MAP@20": ens["map20"][ens["method"]],
                "eval MAP@20": s["map20"],
                # the simulation has no background shift: it cannot estimate `domain`
                "est. sAUC": None
                if "domain" in scorer.split("+")
                else tun["osd"]["simulated_sauc"].get(scorer),
                "eval sAUC": s["sauc"],
                "score": s["score"],
            }
        )
    s = score_files(prior_path, truth_path)
    rows.append(
        {
            "model": "frequency prior",
            "CV MAP@20": np.nan,
            "eval MAP@20": s["map20"],
            "est. sAUC": 0.0,
            "eval sAUC": s["sauc"],
            "score": s["score"],
        }
    )
    table = pd.DataFrame(rows)

    _stage(
        9,
        total,
        "every osd scorer: sAUC on held-out-category OOF and the shift test chose it; eval sAUC is a diagnostic",
    )
    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False).set_index("id")
    ens = ensemble_eval(tuning, comp_dir, preds)
    flag = truth.loc[ens["ids"], "osd"].astype(int).to_numpy()
    diag = []
    combined = (scorer,) if "+" in scorer else ()
    for name_ in (*osd_lib.SCORERS, *combined):
        col = eval_osd(
            tuning, ens["runs"], ens["evals"], ens["oofs"], name_, ens["probs"], ens["logits"]
        )
        sim = tuning["osd"]["simulated_sauc"].get(name_)
        diag.append(
            {
                "osd scorer": name_,
                "held-out-category sAUC": sim,
                "eval sAUC": sauc(flag, col),
                "chosen": "<-" if name_ == scorer else "",
            }
        )
    print(pd.DataFrame(diag).round(4).to_string(index=False))

    print(
        f"\nscore table ({time.perf_counter() - t0:.0f} s this run; CV = OOF, fitted ensemble weights fold-held-out):"
    )
    print(table.round(4).to_string(index=False, na_rep="-"))
    return table


def run(args: argparse.Namespace) -> int:
    if args.kind == "folder":
        from pathlib import Path

        from fathom.demo import FolderDemo, run_folder_demo

        return run_folder_demo(FolderDemo(Path(args.workdir) / "folder", args.seed, args.weights))
    run_multilabel(args.workdir, args.seed)
    return 0
