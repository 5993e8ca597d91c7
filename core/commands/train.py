"""`verity train MODEL ...` and `verity eval MODEL ...`.

Each trainable detector has a module in core/train that defines `NAME`, `add_train_args(parser)`,
`train(args) -> int`, `add_eval_args(parser)` and `evaluate(args) -> int`; it is found
automatically.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from types import ModuleType


def trainers() -> dict[str, ModuleType]:
    import core.train as pkg

    found: dict[str, ModuleType] = {}
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name.startswith("_"):
            continue
        m = importlib.import_module(f"core.train.{mod.name}")
        if hasattr(m, "NAME") and hasattr(m, "train"):
            found[m.NAME] = m
    return dict(sorted(found.items()))


def register(sub: argparse._SubParsersAction) -> None:
    mods = trainers()
    p_train = sub.add_parser("train", help="train a learned detector")
    t_sub = p_train.add_subparsers(dest="model", metavar="MODEL", required=True)
    p_eval = sub.add_parser("eval", help="evaluate a learned detector on labelled data")
    e_sub = p_eval.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name, m in mods.items():
        tp = t_sub.add_parser(name, help=(m.__doc__ or "").strip().splitlines()[0] if m.__doc__ else None)
        m.add_train_args(tp)
        tp.set_defaults(func=m.train)
        ep = e_sub.add_parser(name)
        m.add_eval_args(ep)
        ep.set_defaults(func=m.evaluate)
