from __future__ import annotations

import argparse

HELP = "fetch the pretrained files configs need into a folder (an HF cache layout)"
DESCRIPTION = """Download (or take from the Hugging Face cache) timm's default weights for every
config with pretrained=true, and copy them into DIR laid out as an HF hub cache, plain files
only. A machine with HF_HUB_CACHE=DIR and HF_HUB_OFFLINE=1 then trains those configs with no
internet; fathom's training kernels do this with the folder that
`fathom kaggle upload-weights --pretrained DIR` ships.

example:
  fathom weights fetch fathomnet_effb0 fathomnet_r50 fathomnet_d121 --out pretrained"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("configs", nargs="+", help="experiment configs (.toml paths or names)")
    p.add_argument("--out", default="pretrained", help="folder to fill (default pretrained)")


def run(args: argparse.Namespace) -> int:
    from fathom.engine.pretrained import export

    for entry in export(args.configs, args.out):
        print(
            f"{entry['model']} ({', '.join(entry['configs'])}): {entry['repo']} "
            f"-> {args.out}/{entry['file']} ({entry['bytes'] / 1e6:.1f} MB)"
        )
    return 0
