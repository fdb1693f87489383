"""``minroots train`` in which one rank kills itself (SIGKILL) after a given step: the dead-rank
test of ``tests/test_distributed.py`` runs it under ``mpirun``.

    mpirun -np 2 python tests/mpi_job_with_a_dying_rank.py RANK STEP <minroots train arguments>

The rank dies without a word, as a crashed or killed machine would; the other ranks must stop
with a clear message (chapter 13, ``book/13_training_at_scale.md``).
"""

import os
import signal
import sys


def main() -> int:
    from minroots.cli import main as minroots_main
    from minroots.distributed.world import launched_ranks
    from minroots.training import trainer

    rank, step, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]

    class Die:
        def on_step_end(self, t, n, logs):
            if n == step and launched_ranks()[1] == rank:
                os.kill(os.getpid(), signal.SIGKILL)

    init = trainer.Trainer.__init__

    def init_with_death(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.callbacks.append(Die())

    trainer.Trainer.__init__ = init_with_death
    return minroots_main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
