"""`fathom kaggle <action>`: one module per action (fathom.cli registers VERBS)."""

HELP = "talk to Kaggle: download the competition, submit, list scores, upload weights"
DESCRIPTION = """Kaggle's side of the flow, through the kaggle package's KaggleApi.

  download         the competition's files, unzipped (safely) and checked
  submit FILE      validate FILE, then upload it with its manifest's CV score in the message
  submissions      your latest submissions and their scores
  upload-weights   runs' checkpoints + configs + a wheel of fathom as a Kaggle dataset

Credentials: a token from https://www.kaggle.com/settings/api saved as ~/.kaggle/kaggle.json
(chmod 600), or KAGGLE_USERNAME and KAGGLE_KEY in the environment. A 403 usually means the
competition's rules are not accepted yet (on its Kaggle page).

examples:
  fathom kaggle download --out data/fathomnet
  fathom kaggle submit submissions/blend.csv --comp data/fathomnet --dry-run
  fathom kaggle submissions
  fathom kaggle upload-weights runs/effb0 runs/r50 --dataset me/fathom-weights"""
VERBS = ["download", "submit", "submissions", "upload-weights"]
