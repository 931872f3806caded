"""``liver-mm pretrain``: self-supervised pretraining of the image encoder (Hydra overrides of conf/pretrain.yaml)."""

from __future__ import annotations

import argparse


def _pretrain(args: argparse.Namespace) -> int:
    from liver_mm.cli.hydra_cmds import run_hydra_app
    from liver_mm.training.pretrain_run import pretrain_run

    return run_hydra_app("pretrain", pretrain_run, args.overrides)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain the image encoder self-supervised on the training crops (lightly: pretrain.method="
             "simclr|byol|dino)",
        description="Pretrain the timm image encoder self-supervised (SimCLR, BYOL or DINO from lightly) on the "
                    "training split's lesion crops, plus the unlabelled frames of pretrain.pool=DIR; logs an MLflow "
                    "run with the loss curve and the encoder (model.net.image.pretrained_path=FILE). Arguments are "
                    "Hydra overrides of conf/pretrain.yaml, e.g. pretrain.method=byol pretrain.epochs=5 data.n=300.",
    )
    p.set_defaults(func=_pretrain, accepts_overrides=True,
                   on_interrupt="the pretraining run is marked KILLED and nothing is cached; rerun to start again")
