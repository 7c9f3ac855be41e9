"""Convert the official CUHK03 release into the layout `readnet.data.load_dataset("cuhk03", ...)` reads.

    python data_prep/prepare_cuhk03.py --mat cuhk03_release/cuhk-03.mat --configs CUHK03-NP/ --out data/

writes data/cuhk03/images_{labeled,detected}/ and data/cuhk03/splits_new_{labeled,detected}.json
(the new 767/700 protocol). Running it again skips what is already converted.
"""
from __future__ import annotations

import argparse
import sys

from readnet.data.cuhk03_mat import SOURCE, convert_cuhk03


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=SOURCE)
    parser.add_argument("--mat", required=True, help="path to cuhk-03.mat (MATLAB v7.3) from cuhk03_release.zip")
    parser.add_argument("--configs", required=True,
                        help="folder holding cuhk03_new_protocol_config_{labeled,detected}.mat")
    parser.add_argument("--out", required=True, help="data root; the converted dataset goes to <out>/cuhk03/")
    args = parser.parse_args(argv)
    out = convert_cuhk03(args.mat, args.configs, args.out)
    print(f"CUHK03 (new protocol) ready in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
