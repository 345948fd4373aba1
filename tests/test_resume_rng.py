"""Issue 18.4: last.pt holds every generator dropout draws from, the CUDA devices' included,
and puts them back on resume; a checkpoint from before keeps loading. CUDA's generator calls
are stood in for (a CPU has none); tests/test_gpu.py resumes on a real GPU."""

import torch

from fathom import fileio
from fathom.engine.train import restore_rng, rng_state

CUDA = torch.device("cuda", 0)


class FakeCudaRng:
    def __init__(self, monkeypatch, n_devices=2):
        self.states = [torch.full((16,), i + 1, dtype=torch.uint8) for i in range(n_devices)]
        self.restored = None
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: list(self.states))
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n_devices)
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", self._set)

    def _set(self, states):
        self.restored = [s.clone() for s in states]


def test_every_cuda_generator_is_saved_and_restored(monkeypatch, tmp_path):
    fake = FakeCudaRng(monkeypatch)
    torch.manual_seed(5)
    saved = rng_state(CUDA)
    path = fileio.save_torch(tmp_path / "last.pt", {"x": 1, **saved})
    expected_cpu = torch.rand(3)
    torch.manual_seed(99)
    restore_rng(fileio.load_torch(path), CUDA)  # read back as resume reads it (weights_only)
    assert [s.tolist() for s in fake.restored] == [s.tolist() for s in fake.states]
    torch.testing.assert_close(torch.rand(3), expected_cpu)


def test_states_of_gpus_this_machine_lacks_are_left_out(monkeypatch):
    fake = FakeCudaRng(monkeypatch, n_devices=4)
    saved = rng_state(CUDA)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    restore_rng(saved, CUDA)
    assert len(fake.restored) == 1 and fake.restored[0].tolist() == fake.states[0].tolist()


def test_a_checkpoint_from_before_restores_the_cpu_generator_alone(monkeypatch):
    fake = FakeCudaRng(monkeypatch)
    torch.manual_seed(7)
    old = {"rng": torch.get_rng_state()}  # what last.pt held until now
    expected = torch.rand(2)
    restore_rng(old, CUDA)
    assert fake.restored is None
    torch.testing.assert_close(torch.rand(2), expected)


def test_a_cpu_run_saves_no_cuda_state():
    assert rng_state(torch.device("cpu"))["cuda_rng"] is None
