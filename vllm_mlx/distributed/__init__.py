"""One model served by several processes or machines, with MLX distributed.

``vllm-mlx serve MODEL --hostfile hosts.json [--backend ring|mpi] [--parallel
tensor|pipeline]`` starts one process per host through ``mlx.launch`` (:mod:`.launch`,
:mod:`.serve`). Each joins the group (:mod:`.group`) and loads its shard with mlx-lm /
mlx-vlm's own sharding (:mod:`.sharding`). Rank 0 serves HTTP; before every scheduler step
it broadcasts the step's inputs with MLX collectives (:mod:`.wire`), so every rank's
replicated scheduler takes the same step and the sharded forward passes meet
(:mod:`.coordinator`). Dead or silent ranks fail the group with an error naming them
(:mod:`.liveness` spots a dead peer while a step hangs).

Light on import: only :mod:`.launch` is needed to start the group; the rest loads MLX.
"""
