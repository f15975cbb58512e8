"""`wmhda synth`: write synthetic T1 + FLAIR + WMH subjects of one domain, or a preset of splits."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ..progress import print_bar
from ._common import at_least

NAME = "synth"
HELP = "generate the synthetic two-domain WMH benchmark (one domain, or the standard splits)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain", help="source, target or mild (with --n)")
    parser.add_argument("--n", type=at_least(1), help="number of subjects (with --domain)")
    parser.add_argument("--preset", help="tiny, demo or standard: write every split "
                                         "(source_train ... mild_test) into sub-folders")
    parser.add_argument("--sizes", default="", help="with --preset: override split sizes, e.g. "
                                                    "'source_train=10,target_test=0' or '1' for all")
    parser.add_argument("--prefix", help="with --domain: subject ids <prefix>-NNN (default: the domain "
                                         "name), so that two sets can be used together without clashing ids")
    parser.add_argument("--seed", type=at_least(0), default=0,
                        help="base seed (default 0); same seed, same files")
    parser.add_argument("--fov", default=None, help="field of view: full (default; tiny preset: small) "
                                                    "or small (a box about the ventricles, ~1 s/subject)")
    parser.add_argument("--workers", type=at_least(1), default=1, help="parallel processes (default 1)")
    parser.add_argument("--out", required=True, help="output folder")


def parse_sizes(text: str, split_names) -> dict[str, int]:
    """'name=count,...' or a single count for every split."""
    text = text.strip()
    if not text:
        return {}
    try:
        if "=" not in text:
            return {name: int(text) for name in split_names}
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
        return {name.strip(): int(count) for name, count in pairs}
    except ValueError:
        raise InputError("--sizes", f"cannot read {text!r}; expected 'split=count,...' "
                                    "or one count") from None


def run(args: argparse.Namespace) -> int:
    from ..synth import SPLITS, write_preset, write_split  # numpy/scipy only when used

    if args.preset and (args.domain or args.n is not None):
        raise InputError("--preset", "give either --preset or --domain with --n, not both")
    if args.preset and args.prefix:
        raise InputError("--prefix", "a preset names its subjects after its splits; --prefix needs --domain")
    if args.preset:
        sizes = parse_sizes(args.sizes, [s.name for s in SPLITS])
        written = write_preset(args.out, args.preset, args.seed, sizes, args.fov, args.workers,
                               progress=print_bar)
        total = sum(len(cases) for cases in written.values())
        print(f"wrote {total} subjects in {len(written)} splits under {args.out}")
        return 0
    if not args.domain or args.n is None:
        raise InputError("--domain", "give --domain and --n (or --preset)")
    if args.sizes:
        raise InputError("--sizes", "--sizes only applies with --preset")
    cases = write_split(args.out, args.domain, args.n, args.seed, fov=args.fov or "full",
                        prefix=args.prefix, workers=args.workers, progress=print_bar)
    print(f"wrote {len(cases)} {args.domain} subjects and manifest.csv to {args.out}")
    return 0
