"""Optuna study over a search's config values; with --backend ray, trials run on Ray Tune.

    python searches/tune.py configs/tune_kstarts_mnist.yaml --set data.root=DIR
    ray job submit --address http://HEAD:8265 --working-dir . -- python searches/tune.py \
        configs/tune_kstarts_mnist.yaml --set data.root=/data/mnist --backend ray \
        --storage postgresql://optuna:optuna@HEAD:5432/optuna --out /shared/runs/tune
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("tune", "configs/tune_quickstart.yaml"))
