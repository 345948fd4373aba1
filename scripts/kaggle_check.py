"""`make kaggle-check`: the generated kernels, run in an environment built like Kaggle's image.

What it stands for, and what it cannot:
- Kaggle's image: Python 3.12 (pyenv's), the binary libraries at the floors pyproject.toml
  declares (torch, torchvision, numpy, pandas, scikit-learn, pillow, ...), timm and
  huggingface_hub at their floors (older than fathom's own pins), Kaggle's `kaggle`, and no
  iterative-stratification. Built once into --venv (default .kaggle-venv/, git-ignored) and
  rebuilt when the floors change. Not the image itself: none of its other ~1,000 packages.
- A kernel's machine: no network for the kernel (pip `--no-index` with no pip configuration,
  HF_HUB_OFFLINE=1, an empty Hugging Face home) and a folder laid out like /kaggle/input
  (FATHOM_KAGGLE_INPUT). Not its GPUs: the kernels run on this machine's CPU, so the T4 x2
  path (one fold per GPU) and the start-up GPU checks are covered by the unit tests only.

Then, on a small synthetic competition: a tiny run is trained, stitched and tuned with the
checkout (the "laptop"), `fathom submit` writes the laptop's submission, `upload-weights
--dry-run` stages the weights dataset (fathom's wheel and the dependency wheels included), and
the generated predict, train and prior kernels run in the Kaggle-like environment. The predict
kernel's submission.csv must be byte-identical to the laptop's; the train kernel must leave
its two folds' files; the prior kernel's submission must validate.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLUG = "fathomnet-out-of-sample-detection"
PYENV_312 = Path.home() / ".pyenv" / "versions" / "3.12.1" / "bin" / "python"
ABSENT_ON_KAGGLE = {"iterative-stratification"}  # kaggle_requirements.txt has no iterstrat


def say(text: str) -> None:
    print(f"kaggle-check: {text}", flush=True)


def floor_pins(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """pip requirements at the declared floors: `torch>=2.4` -> `torch==2.4.*` (the floor's
    release series: its latest patch), `timm>=1.0.9` -> `timm==1.0.9`; unfloored as declared."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = []
    for dep in deps:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9.]+)", dep.strip())
        name = match[1] if match else dep.strip()
        if re.sub(r"[-_.]+", "-", name).lower() in ABSENT_ON_KAGGLE:
            continue
        if not match:
            pins.append(dep.strip())
        elif match[2].count(".") == 1:
            pins.append(f"{name}=={match[2]}.*")
        else:
            pins.append(f"{name}=={match[2]}")
    return pins


def build_env(venv: Path, python: Path) -> Path:
    """The Kaggle-like environment, built once per set of floors."""
    pins = floor_pins()
    stamp = venv / ".fathom-floors"
    py = venv / "bin" / "python"
    if stamp.is_file() and stamp.read_text().split("\n") == pins and py.is_file():
        say(f"environment {venv} is built ({', '.join(pins[:6])}, ...)")
        return py
    if not python.is_file():
        sys.exit(f"kaggle-check: no Python 3.12 at {python} (pyenv install 3.12.1, or --python)")
    say(f"building {venv} with {python} at the declared floors (once; several minutes: torch)")
    if not py.is_file():
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *pins], check=True)
    gone = subprocess.run(
        [str(py), "-c", "import importlib.util as u; print(u.find_spec('iterstrat') is None)"],
        capture_output=True,
        text=True,
    )
    if gone.stdout.strip() != "True":
        sys.exit(f"kaggle-check: {venv} holds iterstrat; Kaggle's image does not (delete {venv})")
    stamp.write_text("\n".join(pins))
    return py


def run(argv: list, cwd: Path, env: dict | None = None, what: str = "") -> str:
    started = time.perf_counter()
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        print(result.stdout[-6000:], result.stderr[-6000:], sep="\n", file=sys.stderr)
        sys.exit(f"kaggle-check: FAILED: {what or argv[2:4]} (exit {result.returncode})")
    if what:
        say(f"{what}: ok ({time.perf_counter() - started:.0f} s)")
    return result.stdout


def laptop(*argv) -> list:
    return [sys.executable, "-m", "fathom", *argv]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--venv", type=Path, default=ROOT / ".kaggle-venv")
    p.add_argument("--python", type=Path, default=PYENV_312, help="the Python 3.12 to build from")
    p.add_argument("--workdir", type=Path, help="default: a temporary folder, removed at the end")
    args = p.parse_args()
    kaggle_py = build_env(args.venv.absolute(), args.python)
    versions = run(
        [kaggle_py, "-c", "import sys, torch, numpy, pandas, sklearn, timm, huggingface_hub as h;"
         "print(sys.version.split()[0], torch.__version__, numpy.__version__, pandas.__version__,"
         " sklearn.__version__, timm.__version__, h.__version__)"],
        ROOT,
    )  # fmt: skip
    say(
        "Kaggle-like Python, torch, numpy, pandas, scikit-learn, timm, huggingface_hub: "
        + versions.strip()
    )

    work = args.workdir or Path(tempfile.mkdtemp(prefix="kaggle-check-"))
    if (work / ".kaggle-check").is_file():  # this script's own folder from a last run
        shutil.rmtree(work)
    elif work.is_dir() and any(work.iterdir()):
        sys.exit(
            f"kaggle-check: --workdir {work} holds files not from kaggle-check; choose another"
        )
    work.mkdir(parents=True, exist_ok=True)
    (work / ".kaggle-check").write_text("made by scripts/kaggle_check.py\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    vips = run([kaggle_py, "-c", "import importlib.util as u; print(bool(u.find_spec('pyvips')))"],
               ROOT)  # fmt: skip
    if vips.strip() != "True":
        # the kernel decodes PNGs with PIL (no pyvips on the image, fathom/kaggle/wheels.py):
        # the laptop's caches are built the same way, so that the two submissions can be
        # compared byte for byte (libvips' pixels differ from PIL's by ~0.3 grey levels)
        env["FATHOM_PNG_DECODER"] = "pil"
        say("laptop: PNGs decoded with PIL, as in the kernel (FATHOM_PNG_DECODER=pil)")
    comp, runs = work / "comp", work / "runs"
    run(laptop("synth", comp, "--n-train", 60, "--n-eval", 16, "--width", 48, "--height", 32,
               "--seed", 3), work, env, "laptop: synth")  # fmt: skip
    run(laptop("folds", comp, "--n-splits", 3, "--out-dir", work / "folds"), work, env,
        "laptop: folds")  # fmt: skip
    config = work / "tiny.toml"
    shutil.copyfile(ROOT / "fathom" / "configs" / "default.toml", config)
    tiny = ["device=cpu", "epochs=1", "img_size=32", "num_workers=0", "n_folds=3"]
    run(laptop("train", config, f"competition={comp}", f"folds={work / 'folds' / 'mlskf3.csv'}",
               f"cache_dir={work / 'cache'}", *tiny, "--runs", runs, "--no-progress"),
        work, env, "laptop: train 3 folds")  # fmt: skip
    run(laptop("oof", runs / "tiny"), work, env, "laptop: oof")
    tune = runs / "tune.json"
    run(laptop("tune", runs / "tiny", "--prior", "--comp", comp, "--osd", "max_prob",
               "--out", tune), work, env, "laptop: tune")  # fmt: skip
    run(laptop("predict", runs / "tiny", "--comp", comp, "--out", work / "preds" / "tiny",
               "--cache-dir", work / "cache"), work, env, "laptop: predict")  # fmt: skip
    run(laptop("submit", tune, "--name", "laptop", "--comp", comp, "--predictions",
               work / "preds", "--out-dir", work / "submissions"), work, env,
        "laptop: submit")  # fmt: skip

    inp = work / "input"
    shutil.copytree(comp, inp / SLUG, ignore=shutil.ignore_patterns("hidden"))
    run(laptop("kaggle", "upload-weights", runs / "tiny", "--dataset", "alice/fathom-weights",
               "--tune", tune, "--config", config, "--folds", work / "folds" / "mlskf3.csv",
               "--out", inp / "fathom-weights", "--dry-run"),
        work, env, "laptop: upload-weights --dry-run (wheels of fathom, timm, hub, iterstrat)")  # fmt: skip
    kernels = work / "kernels"
    common = ["--owner", "alice", "--dataset", "alice/fathom-weights", "--out", kernels]
    run(laptop("kernel", "build", "fathom-predict", "--tune", tune, *common), work, env,
        "laptop: kernel build predict")  # fmt: skip
    run(laptop("kernel", "build", "fathom-train", "--kind", "train", "--config", "tiny.toml",
               "--folds-file", "mlskf3.csv", "--n-folds", 3,
               # loss=asl: timm's ASL at the floor has no reduction= (fathom.engine.losses)
               *[f"--arg={a}" for a in [*tiny, "loss=asl"]],
               *common), work, env, "laptop: kernel build train (3 folds: 2 kernels)")  # fmt: skip
    run(laptop("kernel", "build", "fathom-prior", "--kind", "prior", *common), work, env,
        "laptop: kernel build prior")  # fmt: skip

    for name in ("fathom-predict", "fathom-train-folds0-1", "fathom-prior"):
        out = work / "out" / name
        kernel_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "HF_"))
        }
        kernel_env |= {
            "FATHOM_KAGGLE_INPUT": str(inp),
            "FATHOM_KAGGLE_WORKING": str(out / "working"),
            "FATHOM_KAGGLE_TMP": str(out / "tmp"),
            "PIP_CONFIG_FILE": os.devnull,  # no find-links, no extra index: only the dataset
            "PIP_NO_INDEX": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(out / "hf"),
            "OMP_NUM_THREADS": "2",
        }
        log = run([kaggle_py, kernels / name / f"{name}.py"], work, kernel_env,
                  f"Kaggle-like: kernel {name}")  # fmt: skip
        for line in log.splitlines():
            if line.startswith("fathom kernel: ") and "done" not in line:
                say(f"  {line}")
    laptop_csv = work / "submissions" / "laptop.csv"
    kernel_csv = work / "out" / "fathom-predict" / "working" / "submission.csv"
    if not filecmp.cmp(laptop_csv, kernel_csv, shallow=False):
        sys.exit(f"kaggle-check: FAILED: {kernel_csv} differs from the laptop's {laptop_csv}")
    say(f"predict kernel's submission.csv is byte-identical to `fathom submit`'s ({laptop_csv})")
    trained = work / "out" / "fathom-train-folds0-1" / "working" / "runs" / "tiny"
    for k in (0, 1):
        if not (trained / f"fold{k}" / "best.pt").is_file():
            sys.exit(f"kaggle-check: FAILED: the train kernel left no fold{k}/best.pt")
    say(f"train kernel trained folds 0 and 1 and kept them ({trained})")
    prior = work / "out" / "fathom-prior" / "working" / "submission.csv"
    run(laptop("validate", prior, "--eval", comp / "object_detection" / "eval.json"), work, env,
        "prior kernel's submission validates")  # fmt: skip
    if not args.workdir:
        shutil.rmtree(work)
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
