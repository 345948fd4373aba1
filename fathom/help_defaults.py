"""Defaults that `--help` texts quote, spelled out so that building the command line imports no
library module: SynthConfig's and FolderSynthConfig's pull in pandas and, through fathom.data,
scikit-learn (two seconds before any help); DownloadConfig's sits behind fathom.data too.
tests/test_cli.py pins each to its dataclass, so they cannot drift apart silently.
"""

SYNTH = {
    "n_train": 900,
    "n_eval": 450,
    "width": 128,
    "height": 96,
    "n_categories": 290,
    "n_supercategories": 20,
    "seed": 0,
}
FOLDER_SYNTH = {"smallest": 8, "size": 64}
DOWNLOAD = {"workers": 32, "retries": 4, "read_timeout": 30.0}
CSV_SYNTH = {"format": "single", "n_train": 300, "n_eval": 150, "size": 32, "seed": 0}
CSV_FORMATS = ("single", "set", "onehot", "ranked")  # fathom.data.csvtable.FORMATS
