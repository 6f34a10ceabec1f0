"""K-starts mask search. Locally or as a Ray job:

    python searches/kstarts.py configs/kstarts_mnist.yaml --set data.root=DIR
    ray job submit --working-dir . -- python searches/kstarts.py configs/kstarts_mnist.yaml \
        --set data.root=/data/mnist --backend ray
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("run", "configs/quickstart.yaml"))
