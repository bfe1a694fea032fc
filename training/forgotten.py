"""Shoppers who asked to be forgotten, as training sees them: the privacy ledger the
service and `recsvc forget` write (`recsvc.stores.privacy`), read from the state
directory beside the models, so that no training learns from their rows again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from recsvc.settings import Settings
from recsvc.stores.forget import forgotten_mask
from recsvc.stores.privacy import PrivacyLedger


def open_ledger(model_root: Path, state_dir: Path | None) -> PrivacyLedger | None:
    """The ledger of the state directory (`state_dir`, else RECSVC_STATE_DIR, else
    MODEL_ROOT/../state); None when nobody was ever recorded there."""
    overrides = {"model_root": model_root}
    if state_dir is not None:
        overrides["state_dir"] = state_dir
    settings = Settings(**overrides)
    if not settings.paths.privacy_ledger.exists():
        return None
    return settings.privacy_ledger()


def forgotten_filter(ledger: PrivacyLedger | None
                     ) -> Callable[[np.ndarray], np.ndarray] | None:
    if ledger is None or not ledger.forgotten:
        return None
    return lambda user_ids: forgotten_mask(ledger, user_ids)
