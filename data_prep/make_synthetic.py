"""Write synthetic ReID datasets in the published layouts (same as `readnet make-synthetic`).

    python data_prep/make_synthetic.py --layout all --root data/synthetic --size demo --seed 0
"""
import sys

from readnet.data.synthetic import cli

if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
