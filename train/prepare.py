"""`brain-mri prepare`: crop, split and de-duplicate once; write one bundle file.

The bundle lets `python -m train --prepared BUNDLE` run where the raw scans are not
(a GPU machine), with exactly the same splits and duplicate removal.
"""

from __future__ import annotations

import sys
from pathlib import Path

from train.data.discover import DataError
from train.data.splits import prepare, save_bundle
from train.options import add_data_arguments, new_parser


def main(argv=None) -> int:
    parser = new_parser("brain-mri prepare", __doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="bundle file to write (.npz)")
    parser.add_argument("--jpeg-quality", type=int, metavar="Q",
                        help="store crops as JPEG at this quality (smaller, lossy); default lossless")
    args = parser.parse_args(argv)
    try:
        if not args.train or (args.val is None and args.val_split is None):
            raise DataError("Give --train DIR... and one of --val DIR... or --val-split FRACTION.")
        prepared = prepare(args.train, val_dirs=args.val, val_split=args.val_split, test_dirs=args.test,
                           size=args.image_size, negative_classes=tuple(args.negative_classes),
                           cache_dir=args.cache_dir, workers=args.workers, seed=args.seed,
                           near_threshold=args.near_threshold)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = save_bundle(prepared, args.out, args.jpeg_quality)
    print(f"Wrote {len(prepared.labels)} crops to {path} ({path.stat().st_size / 1e6:.1f} MB).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
