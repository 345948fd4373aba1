"""`fathom train --gpus`: folds spread over GPUs, one process each, with a fake launcher."""

import threading
import time

import pytest

from fathom.engine.multigpu import parse_gpus, train_config_on_gpus
from fathom.errors import FathomError


class FakeLauncher:
    """Stands in for subprocess.Popen: records each launch, the GPU it got, and how many
    ran at once; fold `fail` exits 1."""

    def __init__(self, fail=None):
        self.launched, self.running, self.most = [], 0, 0
        self.lock = threading.Lock()
        self.fail = fail

    def __call__(self, argv, env):
        fold = int(argv[argv.index("--fold") + 1])
        with self.lock:
            self.launched.append((fold, env["CUDA_VISIBLE_DEVICES"], argv))
            self.running += 1
            self.most = max(self.most, self.running)
        launcher = self

        class Proc:
            def __init__(self):
                self.stdout = self._lines()

            def _lines(self):
                time.sleep(0.05)  # long enough for the folds to overlap
                yield f"fold{fold}: stage 2, 10 trainable parameters\n"
                yield f"fold{fold} epoch 1/1  stage 2  train_loss 0.5\n"
                yield f"runs/x/fold{fold}: best epoch 1, val MAP@20 0.5\n"

            def wait(self):
                with launcher.lock:
                    launcher.running -= 1
                return 1 if fold == launcher.fail else 0

        return Proc()


def test_folds_run_one_per_gpu_at_most_and_each_once(tmp_path):
    fake, lines = FakeLauncher(), []
    train_config_on_gpus(
        "fathomnet_r50", ["epochs=1"], "r50", tmp_path, [0, 1, 2, 3, 4], "0,1", fake, lines.append
    )
    assert sorted(k for k, _, _ in fake.launched) == [0, 1, 2, 3, 4]
    assert fake.most == 2  # two GPUs: two folds at a time, never more
    assert {gpu for _, gpu, _ in fake.launched} == {"0", "1"}
    _, _, argv = fake.launched[0]
    assert argv[argv.index("train") :][:3] == ["train", "fathomnet_r50", "epochs=1"]
    assert argv[-7:] == [
        "--fold",
        argv[-6],
        "--name",
        "r50",
        "--runs",
        str(tmp_path),
        "--no-progress",
    ]
    epoch_lines = [line for line in lines if " epoch 1/1 " in line]
    assert len(epoch_lines) == 5 and all(line.startswith("[gpu ") for line in epoch_lines)
    assert (tmp_path / "r50" / "logs" / "fold3.log").read_text().count("\n") == 3


def test_a_failed_fold_is_named_and_the_others_finish(tmp_path):
    fake = FakeLauncher(fail=2)
    with pytest.raises(FathomError, match=r"fold2 \(exit 1\) failed; .* resumes them"):
        train_config_on_gpus("c", [], "c", tmp_path, [0, 1, 2, 3], "0,1,2", fake, lambda s: None)
    assert sorted(k for k, _, _ in fake.launched) == [0, 1, 2, 3]


def test_gpus_must_be_distinct_numbers():
    assert parse_gpus("0, 1,3") == ["0", "1", "3"]
    for bad in ("", "0,0", "cuda:0", "a"):
        with pytest.raises(FathomError, match="--gpus"):
            parse_gpus(bad)
