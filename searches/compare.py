"""Methods side by side (kind: comparison).

    python searches/compare.py configs/compare_mnist.yaml --set data.root=DIR
    ray job submit --address http://HEAD:8265 --working-dir . -- python searches/compare.py \
        configs/compare_mnist.yaml --set data.root=/data/mnist --backend ray \
        --out /shared/runs/compare
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("run", "configs/compare_digits.yaml"))
