"""`fathom train --gpus`: folds spread over GPUs, one process each, with a fake launcher."""

import threading
import time

import pytest

from fathom.engine.multigpu import parse_gpus, train_config_on_gpus, visible_gpus
from fathom.errors import FathomError


def two_gpus():
    return 2


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
        "fathomnet_r50", ["epochs=1"], "r50", tmp_path, [0, 1, 2, 3, 4], "0,1", fake, lines.append,
        count=two_gpus,
    )  # fmt: skip
    assert sorted(k for k, _, _ in fake.launched) == [0, 1, 2, 3, 4]
    assert fake.most == 2  # two GPUs: two folds at a time, never more
    assert {gpu for _, gpu, _ in fake.launched} == {"0", "1"}
    _, _, argv = fake.launched[0]
    assert argv[argv.index("train") :][:4] == ["train", "fathomnet_r50", "epochs=1", "device=cuda"]
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
        train_config_on_gpus(
            "c", [], "c", tmp_path, [0, 1, 2, 3], "0,1,2", fake, lambda s: None, count=lambda: 3
        )
    assert sorted(k for k, _, _ in fake.launched) == [0, 1, 2, 3]


def test_gpus_must_be_distinct_numbers_or_ids():
    assert parse_gpus("0, 1,3") == ["0", "1", "3"]
    uuid = "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"
    mig = "MIG-7a8f2b56-1e2d-5f3c-9a0b-123456789abc"
    old_mig = "MIG-GPU-8932f937-d72c-4106-c12f-20bd9faed9f6/1/0"
    assert parse_gpus(f"{uuid},{mig},{old_mig}") == [uuid, mig, old_mig]
    for bad in ("", "0,0", "cuda:0", "a", "GPU-x y", f"{uuid},{uuid}"):
        with pytest.raises(FathomError, match="--gpus"):
            parse_gpus(bad)


# --- issue 18.14 and 21.2: which GPU a child gets


def test_numbers_index_into_an_existing_cuda_visible_devices_mask():
    env = {"CUDA_VISIBLE_DEVICES": "4,5,GPU-abc"}
    assert visible_gpus(["1", "0", "2"], env, 3) == ["5", "4", "GPU-abc"]
    assert visible_gpus(["1", "0"], {}, 2) == ["1", "0"]  # no mask: the physical numbers
    assert visible_gpus(["MIG-1234-5678"], env, 3) == ["MIG-1234-5678"]


def test_a_gpu_number_cuda_does_not_see_is_refused_in_one_line():
    with pytest.raises(FathomError, match=r"no GPU 2; PyTorch sees 2 \(0 to 1\) .*=4,5"):
        visible_gpus(["0", "2"], {"CUDA_VISIBLE_DEVICES": "4,5"}, 2)


def test_gpus_where_cuda_sees_none_is_refused_before_any_child(tmp_path):
    fake = FakeLauncher()
    with pytest.raises(FathomError, match=r"--gpus 0: PyTorch sees no CUDA GPU here"):
        train_config_on_gpus("c", [], "c", tmp_path, [0, 1], "0", fake, count=lambda: 0)
    assert fake.launched == []


def test_children_get_the_masked_gpu_and_device_cuda_whatever_the_config_said(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    fake = FakeLauncher()
    train_config_on_gpus(
        "c", ["device=cuda:1"], "c", tmp_path, [0, 1], "1", fake, lambda s: None,
        device="cuda:1", count=two_gpus,
    )  # fmt: skip
    assert {gpu for _, gpu, _ in fake.launched} == {"3"}
    for _, _, argv in fake.launched:
        # the child sees its one GPU as cuda:0: the last device override wins
        assert [a for a in argv if a.startswith("device=")][-1] == "device=cuda"


def test_gpus_with_a_cpu_config_is_refused(tmp_path):
    with pytest.raises(FathomError, match=r"--gpus with device = cpu"):
        train_config_on_gpus("c", [], "c", tmp_path, [0], "0", FakeLauncher(), device="cpu")
