"""Data parallelism: buckets, shards, simulated ranks, and real 2-rank jobs under ``mpirun``.

The ``mpirun`` tests start ``minroots train --preset tiny`` as a subprocess, on 2 ranks and on 1,
and compare the weights of the final checkpoints; they skip without ``mpirun`` and ``mpi4py``
(``apt-get install openmpi-bin``, ``pip install "minroots[distributed]"``).
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minroots
from minroots import backend as B
from minroots.distributed import (
    CommunicationError,
    GradientBuckets,
    LocalGroup,
    World,
    launched_ranks,
    plan_buckets,
    rows_per_micro_batch,
    run_ranks,
    shard,
)
from minroots.nn import Parameter, TransformerConfig, TransformerModel
from minroots.persistence import load_arrays
from minroots.training import History, Trainer, TrainerConfig

REPO = Path(__file__).resolve().parents[1]
MPIRUN = shutil.which("mpirun")
needs_mpi = pytest.mark.skipif(
    MPIRUN is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs mpirun and mpi4py (apt-get install openmpi-bin; pip install minroots[distributed])",
)


# --- the pieces -------------------------------------------------------------------------------
def test_plan_buckets_hand_example():
    """Reverse order, at most `capacity` numbers a bucket, a big tensor alone in its own."""
    assert plan_buckets([4, 1, 3], capacity=5) == [[2, 1], [0]]
    assert plan_buckets([2, 9, 2], capacity=4) == [[2], [1], [0]]
    assert plan_buckets([1, 1, 1], capacity=100) == [[2, 1, 0]]


class CountingGroup(LocalGroup):
    """A simulated group that counts all-reduce calls."""

    calls = 0

    def communicator(self, rank):
        comm = super().communicator(rank)
        reduce = comm.all_reduce

        def counted(array):
            if rank == 0:
                CountingGroup.calls += 1
            reduce(array)

        comm.all_reduce = counted
        return comm


def test_gradient_buckets_average_over_ranks_in_one_call_per_bucket():
    """Each rank's gradients differ; afterwards every rank holds their mean (and the mean of the
    scalars riding along), after exactly one all-reduce per bucket."""
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (5, 2), (7,)]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    group = CountingGroup(3)
    CountingGroup.calls = 0

    def rank(comm):
        params = [Parameter(np.zeros(s, np.float32)) for s in shapes]
        for p, g in zip(params, grads[comm.rank], strict=True):
            p.grad = g.copy()
        buckets = GradientBuckets(params, bucket_bytes=4 * 16)  # 16 float32: [7], [10, 4], [12]
        (loss,) = buckets.all_reduce_mean(comm, [float(comm.rank)])
        return [p.grad for p in params], loss, len(buckets)

    results = run_ranks(3, rank, group=group)
    n_buckets = results[0][2]
    assert n_buckets == 3 and CountingGroup.calls == n_buckets
    for got, loss, _ in results:
        assert loss == pytest.approx(1.0)
        for k, g in enumerate(got):
            np.testing.assert_allclose(g, sum(grads[r][k] for r in range(3)) / 3, rtol=1e-6)


def test_launched_ranks_reads_each_launcher():
    assert launched_ranks({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3",
                           "OMPI_COMM_WORLD_LOCAL_RANK": "1"}) == (4, 3, 1)  # fmt: skip
    assert launched_ranks({"PMI_SIZE": "2", "PMI_RANK": "1"}) == (2, 1, 0)
    assert launched_ranks({"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5",
                           "SLURM_LOCALID": "1"}) == (8, 5, 1)  # fmt: skip
    assert launched_ranks({"SLURM_NTASKS": "8"}) == (1, 0, 0)  # a batch script is one process


def test_shards_are_disjoint_and_cover_the_batch():
    x = np.arange(24).reshape(12, 2)
    parts = [shard((x, x + 100), r, 3) for r in range(3)]
    assert all(p[0].shape == (4, 2) for p in parts)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
    np.testing.assert_array_equal(parts[1][1], x[4:8] + 100)
    assert rows_per_micro_batch(12, 5) == 4 and rows_per_micro_batch(7, 3) == 1


def config(**changes):
    base = dict(max_steps=8, batch_size=8, log_interval=1, eval_interval=0, out_dir=None,
                warmup=2, lr=3e-3)  # fmt: skip
    return TrainerConfig(**{**base, **changes})


@pytest.mark.parametrize(
    ("ranks", "changes", "message"),
    [
        (4, dict(batch_size=2), r"^Trainer: 4 ranks but a global batch of 2 sequences "),
        (3, dict(batch_size=8), r"^Trainer: the global batch of 8 sequences .* over 3 ranks"),
        (1, dict(communicator="nccl"), r"^Trainer: communicator='nccl' needs GPU arrays"),
    ],
)
def test_bad_scale_out_settings_fail_before_training(ranks, changes, message):
    """More ranks than rows, a batch that does not split evenly, NCCL with CPU arrays: one clear
    error each, from the launcher's environment alone (no communicator is built)."""
    env = {"OMPI_COMM_WORLD_SIZE": str(ranks), "OMPI_COMM_WORLD_RANK": "0"}
    with pytest.raises(ValueError, match=message):
        World.launch(config(**changes), environ=env)


def test_a_trainer_refuses_a_batch_that_does_not_split_over_its_world():
    model = tiny(62)
    with pytest.raises(ValueError, match=r"does not split evenly over 2 ranks"):
        Trainer(model, TEXT, config=config(batch_size=3), world=World(rank=0, size=2))


@pytest.mark.skipif(B.cupy_available(), reason="this machine has a GPU")
def test_device_cuda_without_cupy_or_a_gpu_fails_before_training():
    with pytest.raises(RuntimeError, match=r"the CuPy backend was requested but (CuPy|no CUDA)"):
        Trainer(tiny(62), TEXT, config=config(device="cuda"))


def test_a_single_process_imports_neither_mpi_nor_nccl(tmp_path):
    """One process trains without importing mpi4py or CuPy (a fresh interpreter, 2 steps)."""
    code = (
        "import sys, minroots\n"
        "from minroots.training import Trainer\n"
        "from minroots.nn import TransformerModel\n"
        "text = minroots.data.load_corpus('shakespeare')[:5000]\n"
        "Trainer(TransformerModel(vocab_size=80, block_size=16, n_layer=1, n_embd=16), text,\n"
        "        max_steps=2, batch_size=2, log_interval=0, eval_interval=0, out_dir=None).train()\n"
        "print(sorted(m for m in ('mpi4py', 'cupy') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "MINROOTS_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


# --- simulated ranks: one process, threads, the same Trainer ------------------------------------
TEXT = minroots.data.load_corpus("shakespeare")[:20000]


def tiny(vocab, seed=0):
    minroots.manual_seed(seed)
    return TransformerModel(TransformerConfig(vocab_size=vocab, block_size=32, n_layer=1,
                                              n_head=2, n_embd=32))  # fmt: skip


def dataset():
    from minroots.data import TextDataset

    return TextDataset(TEXT, block_size=32, use_cache=False)


def train_weights(cfg, world=None, model=None):
    data = dataset()
    model = model or tiny(data.vocab_size)
    trainer = Trainer(model, data, config=cfg, world=world)
    history = trainer.train()
    return {n: p.data.copy() for n, p in model.named_parameters()}, history


def max_difference(a, b) -> float:
    return max(float(np.abs(a[n] - b[n]).max()) for n in a)


def test_simulated_ranks_train_the_weights_of_one_big_batch():
    """Two simulated ranks with 4 rows each == one process with 8 rows == one process with 2
    micro-batches of 4, to float32 rounding. (The ranks are seeded differently: rank 0's weights
    are broadcast at the start.)"""
    big, _ = train_weights(config())
    accumulated, _ = train_weights(config(batch_size=4, grad_accum_steps=2))
    models = [tiny(dataset().vocab_size, seed=r) for r in range(2)]  # made before the threads
    ranks = run_ranks(2, lambda c: train_weights(config(), World(c.rank, 2, c), models[c.rank]))
    (w0, h0), (w1, _) = ranks
    assert max_difference(w0, w1) == 0.0  # the same update on every rank
    assert max_difference(w0, big) < 1e-5
    assert max_difference(accumulated, big) < 1e-5
    assert [r["train_loss"] for r in h0] == pytest.approx(
        [r["train_loss"] for r in train_weights(config())[1]], abs=1e-5
    )


def test_a_failing_rank_stops_the_simulated_others():
    """A rank that raises leaves the others' all-reduce unanswered: they stop at once with a
    CommunicationError, and the first real error is raised."""

    def job(comm):
        if comm.rank == 1:
            raise KeyError("rank 1 broke")
        comm.all_reduce(np.zeros(3))

    with pytest.raises(KeyError, match="rank 1 broke"):
        run_ranks(2, job)
    group = LocalGroup(2, timeout=0.2)
    with pytest.raises(CommunicationError, match=r"^rank 0/2: the all-reduce did not finish "):
        group.communicator(0).all_reduce(np.zeros(3))


# --- real ranks: mpirun -np 2 minroots train ---------------------------------------------------
STEPS = 50
TRAIN = ["--preset", "tiny", f"max_steps={STEPS}", "batch_size=8", "log_interval=1",
         "eval_interval=0", "save_interval=25", "keep_last=3", "sample.max_new_tokens=0"]  # fmt: skip


def launch(ranks: int, out: Path, *args, script=None, timeout=240):
    """Run ``minroots train`` (or a script) on ``ranks`` processes; return the finished process."""
    program = [sys.executable, *(script or ["-m", "minroots", "train"])]
    command = [*program, "--out", str(out), *TRAIN, *args]
    if ranks > 1:
        openmpi = "Open MPI" in subprocess.run([MPIRUN, "--version"], capture_output=True,
                                               text=True).stdout  # fmt: skip
        flags = ["--allow-run-as-root", "--oversubscribe"] if openmpi else []
        command = [MPIRUN, *flags, "-np", str(ranks), *command]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MINROOTS_CACHE": str(out.parent / "cache")}  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def final_weights(out: Path, step: int = STEPS) -> dict:
    return load_arrays(out / "checkpoints" / f"step-{step:08d}" / "model.safetensors")[0]


def losses(out: Path) -> dict:
    return {r["step"]: r["train_loss"] for r in History.read(out / "history.jsonl")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 50 steps three ways: 2 ranks x 4 rows, 1 rank x 8 rows, 1 rank x 2 x 4 rows."""
    root = tmp_path_factory.mktemp("ranks")
    jobs = {"two_ranks": (2, []), "one_rank": (1, []),
            "accumulated": (1, ["batch_size=4", "grad_accum_steps=2"])}  # fmt: skip
    for name, (ranks, args) in jobs.items():
        done = launch(ranks, root / name, *args)
        assert done.returncode == 0, done.stderr[-3000:]
    return root


@needs_mpi
def test_two_ranks_train_the_weights_of_one_big_batch_and_of_accumulation(runs):
    """After 50 AdamW steps of the tiny preset, the 2-rank weights differ from the 1-rank ones
    only by float32 rounding of the all-reduce (the measured figure is in chapter 13)."""
    two, one, acc = (final_weights(runs / n) for n in ("two_ranks", "one_rank", "accumulated"))
    print(f"after {STEPS} steps: |2 ranks - 1 rank| <= {max_difference(two, one):.3g}, "
          f"|accumulation - 1 rank| <= {max_difference(acc, one):.3g}")  # fmt: skip
    assert max_difference(two, one) < 1e-4, max_difference(two, one)
    assert max_difference(acc, one) < 1e-4, max_difference(acc, one)
    two_losses, one_losses = losses(runs / "two_ranks"), losses(runs / "one_rank")
    assert max(abs(v - one_losses[s]) for s, v in two_losses.items()) < 1e-4
    text = (runs / "two_ranks" / "history.jsonl").read_text()
    assert text.count("\n") == STEPS  # rank 0 alone wrote the history


@needs_mpi
def test_a_dead_rank_stops_the_job_with_a_message_and_the_checkpoint_resumes_on_one_rank(
    runs, tmp_path
):
    """Rank 1 is killed (SIGKILL) after step 30: rank 0 stops within seconds, saying so and
    naming the checkpoint of step 25; resumed there on ONE rank, the run goes on with the same
    global batches and ends on the weights of the uninterrupted 2-rank run."""
    out = tmp_path / "dies"
    start = time.perf_counter()
    done = launch(2, out, "comm_timeout=30", script=[str(REPO / "tests/mpi_job_with_a_dying_rank.py"),
                                                    "1", "30"])  # fmt: skip
    elapsed = time.perf_counter() - start
    assert done.returncode != 0 and elapsed < 120, (done.returncode, elapsed)
    message = done.stderr
    assert "minroots: error: rank 0/2" in message, message[-3000:]
    assert "another rank has probably died" in message and "step-00000025" in message
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["step-00000025"]

    resumed = launch(1, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert max_difference(final_weights(out), final_weights(runs / "two_ranks")) < 1e-4
    after = {s: v for s, v in losses(out).items() if s > 25}
    reference = losses(runs / "two_ranks")
    assert len(after) == 25
    assert max(abs(v - reference[s]) for s, v in after.items()) < 1e-4


@needs_mpi
def test_a_one_rank_run_resumes_on_two_ranks(runs, tmp_path):
    """The reverse: the 1-rank run's step-25 checkpoint, continued by 2 ranks, ends on the 1-rank
    run's final weights (to all-reduce rounding)."""
    out = tmp_path / "grown"
    shutil.copytree(runs / "one_rank", out)
    shutil.rmtree(out / "checkpoints" / f"step-{STEPS:08d}")
    done = launch(2, out, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert max_difference(final_weights(out), final_weights(runs / "one_rank")) < 1e-4


# --- NCCL on one GPU (run by benchmarks/gpu_check.sh where a GPU is lent) -----------------------
@pytest.mark.gpu
def test_nccl_communicator_on_one_gpu():
    """A group of one: NCCL's all-reduce and broadcast leave the array as it is, gradients go
    through the buckets on the GPU, and a NumPy array is refused with a clear message."""
    from minroots.distributed.nccl import NCCLCommunicator

    comm = NCCLCommunicator(rank=0, size=1, timeout=30)
    xp = B.xp("cuda")
    a = xp.arange(10, dtype=xp.float32)
    comm.all_reduce(a)
    comm.broadcast(a, root=0)
    comm.barrier()
    np.testing.assert_array_equal(B.to_numpy(a), np.arange(10, dtype=np.float32))
    params = [Parameter(xp.ones((3, 4), dtype=xp.float32)), Parameter(xp.ones(5, xp.float32))]
    for p in params:
        p.grad = xp.full(p.data.shape, 2.0, dtype=xp.float32)
    (loss,) = GradientBuckets(params, bucket_bytes=32).all_reduce_mean(comm, [1.5])
    assert loss == 1.5 and all(float(p.grad.max()) == 2.0 for p in params)
    with pytest.raises(TypeError, match=r"^NCCLCommunicator.all_reduce: NCCL reduces GPU arrays"):
        comm.all_reduce(np.zeros(3, np.float32))


@pytest.mark.gpu
def test_a_trainer_on_the_gpu_with_a_one_rank_nccl_world_matches_the_plain_one():
    """device='cuda' with an explicit 1-rank NCCL world trains the weights of the plain GPU run
    (to the rounding of the embedding's atomic GPU additions, whose order varies)."""
    from minroots.distributed.nccl import NCCLCommunicator

    plain, _ = train_weights(config(device="cuda"))
    world = World(rank=0, size=1, comm=NCCLCommunicator(0, 1, timeout=30))
    nccl, _ = train_weights(config(device="cuda"), world=world)
    assert max_difference({k: B.to_numpy(v) for k, v in plain.items()},
                          {k: B.to_numpy(v) for k, v in nccl.items()}) < 1e-5  # fmt: skip
