"""`fathom kernel <action>`: one module per action (fathom.cli registers VERBS)."""

HELP = "build, push and follow Kaggle kernels (inference and per-fold training)"
DESCRIPTION = """Kaggle kernels generated from fathom itself.

  build NAME   write kernels/<NAME>/ (kernel-metadata.json + NAME.py). The script installs
               fathom from the weights dataset with no internet and runs fathom's commands:
               --kind predict: `fathom predict` for each experiment of --tune FILE, then
                               `fathom submit` with that tuning to
                               /kaggle/working/submission.csv;
               --kind train:   `fathom train` of --config, two folds per kernel, one
                               per T4 of Kaggle's T4 x2 (NAME-folds0-1, ...), so K
                               folds run as ceil(K/2) Kaggle jobs at once;
               --kind prior:   the frequency-prior baseline (checks the machinery).
  push NAME    upload kernels/<NAME>/ and start it on Kaggle
  status REF   OWNER/NAME's state (queued, running, complete, error)
  output REF   download its outputs (submission.csv, logs); for a train kernel,
               `--out .` puts runs/<exp>/fold<k>/ straight into the local run folder
  train-folds  what a training kernel runs: its folds at once, one per GPU

The generated script also runs here: set FATHOM_KAGGLE_INPUT to a folder laid out like
/kaggle/input (FATHOM_KAGGLE_WORKING for the outputs) and run `python kernels/NAME/NAME.py`.

examples:
  fathom kaggle upload-weights runs/default runs/mobilenet --tune runs/tune.json --dataset me/fathom-weights
  fathom kernel build fathom-predict --tune runs/tune.json --dataset me/fathom-weights
  fathom kernel build fathom-train-effb0 --kind train --config fathomnet_effb0.toml --folds-file mlskf5.csv --n-folds 5
  (no Kaggle credentials here: add --owner <your user name> to build)
  fathom kernel push fathom-predict
  fathom kernel status me/fathom-predict
  fathom kernel output me/fathom-predict --out kernels/fathom-predict/output"""
VERBS = ["build", "push", "status", "output", "train-folds"]
