"""Training an MLP: the recipe (from settings to kept weights), the loop, the checkpoints that
let an interrupted run continue, and the two data transforms training applies (augmentation and
ZCA whitening)."""
