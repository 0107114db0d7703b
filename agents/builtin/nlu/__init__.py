"""NLUAgent's engine: intents and slots from operator-editable files (docs/NLU.md).

    load(intents_dir, catalog_path) → Model       files + catalog names → trained model
    train(TrainingData) → Model                   what the learning agents call to retrain
    Model.parse(text, now) → {"intent", "slots", "confidence", "alternatives"}
"""
from __future__ import annotations

from .engine import Model, TrainingData, train
from .intents import IntentsInvalid, IntentSet, load_dir

__all__ = ["IntentSet", "IntentsInvalid", "Model", "TrainingData", "catalog_names", "load",
           "load_dir", "train"]


def catalog_names(catalog_path: str) -> tuple[list[str], list[str]]:
    """(agent names, profile names) of the catalog: the values of agent/profile slots."""
    from unified_core.catalog import load_catalog

    cat = load_catalog(catalog_path, env={})
    return list(cat.agents), list(cat.profiles)


def load(intents_dir: str, catalog_path: str | None) -> Model:
    """Read and validate the intent files, take the names from the catalog, train."""
    intents = load_dir(intents_dir)
    agents, profiles = catalog_names(catalog_path) if catalog_path else ([], [])
    return train(TrainingData(intents, agents, profiles))
