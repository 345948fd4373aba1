"""`fathom weights <action>`: pretrained backbone weights (fathom.cli registers VERBS)."""

HELP = "pretrained backbone weights: fetch what configs need, for machines without internet"
DESCRIPTION = """Pretrained weights for configs with pretrained=true (timm's default weights,
from the Hugging Face hub).

  fetch CONFIG... --out DIR   download (or take from the HF cache) the files the configs need
                              into DIR, laid out as an HF cache; ship it to Kaggle with
                              `fathom kaggle upload-weights --pretrained DIR`

example:
  fathom weights fetch fathomnet_effb0 fathomnet_r50 fathomnet_d121 --out pretrained"""
VERBS = ["fetch"]
