"""Shoppers' privacy as training sees it: who asked to be forgotten (the privacy ledger
the service and `recsvc forget` write, `recsvc.stores.privacy`, read from the state
directory beside the models), so that no training learns from their rows again, and how
reports name a shopper (their keyed hash when `RECSVC_ID_HASH_KEY` is set)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsvc.settings import Settings
from recsvc.stores.forget import forgotten_mask
from recsvc.stores.privacy import PrivacyLedger


@dataclass(frozen=True)
class Privacy:
    ledger: PrivacyLedger | None = None
    shown_id: Callable[[str], str] = str

    @property
    def forgotten(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """For an array of user ids, which were forgotten (None: nobody was)."""
        ledger = self.ledger
        if ledger is None or not ledger.forgotten:
            return None
        return lambda user_ids: forgotten_mask(ledger, user_ids)


def privacy_for(model_root: Path, state_dir: Path | None) -> Privacy:
    """From the settings (`RECSVC_*`) and the state directory (`state_dir`, else
    RECSVC_STATE_DIR, else MODEL_ROOT/../state); no ledger when nobody was ever
    recorded there."""
    overrides: dict[str, Path] = {"model_root": model_root}
    if state_dir is not None:
        overrides["state_dir"] = state_dir
    settings = Settings(**overrides)
    ledger = (settings.privacy_ledger() if settings.paths.privacy_ledger.exists()
              else None)
    return Privacy(ledger, settings.key_subject())
