"""K-starts mask search. Locally or as a Ray job (results in --out, printed as an absolute path):

    python searches/kstarts.py configs/kstarts_mnist.yaml --set data.root=DIR
    ray job submit --address http://HEAD:8265 --working-dir . -- python searches/kstarts.py \
        configs/kstarts_mnist.yaml --set data.root=/data/mnist --backend ray \
        --out /shared/runs/kstarts
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("run", "configs/quickstart.yaml"))
