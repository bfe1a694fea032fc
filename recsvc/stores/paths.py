"""Where the service keeps what it learns between trainings, beside the models: the one
definition the service, the jobs and the nightly job share.

    STATE_DIR/                 (default: MODEL_ROOT/../state)
        events/                the events log (`stores.events_log`)
        impressions/           every list served (`stores.impressions`)
        catalog_overrides.json operators' stock, delisting and price changes
        privacy.jsonl          forgotten shoppers and consent changes (`stores.privacy`)
        id_hash.key            the ledger's key when RECSVC_ID_HASH_KEY is not set"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @classmethod
    def of(cls, model_root: Path, state_dir: Path | None = None) -> StatePaths:
        return cls(state_dir if state_dir is not None
                   else Path(model_root).resolve().parent / "state")

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    @property
    def catalog_overrides(self) -> Path:
        return self.root / "catalog_overrides.json"

    @property
    def privacy_ledger(self) -> Path:
        return self.root / "privacy.jsonl"

    @property
    def id_hash_key(self) -> Path:
        return self.root / "id_hash.key"

    @property
    def impressions_dir(self) -> Path:
        return self.root / "impressions"
