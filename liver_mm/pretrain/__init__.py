"""Self-supervised pretraining of the image encoder (lightly: SimCLR, BYOL, DINO) on the cohort's own crops."""
