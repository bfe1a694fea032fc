"""Search queries as signals: an interactions file may carry searches as rows of type
`search` with a `query` and no item; each becomes one row per catalog item its query
matches (by the content model's vocabulary of the same catalog, as the service matches
live searches: `ContentModel.match`), weighted by how well it matched (`value`, 0..1,
relative to the best match). The query text goes no further than this step."""

from __future__ import annotations

from typing import Any

import pandas as pd

from recsvc.core.algorithms.content import ContentModel
from recsvc.core.policy.events import SEARCH, SEARCH_MATCHES, EventWeights


def expand_searches(interactions: pd.DataFrame, items: pd.DataFrame | None,
                    events: EventWeights, content: ContentModel
                    ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The interactions with each query row replaced by its matches, and what happened
    (`searches`, `searches_unmatched`, `search_rows`). Unmatched queries are dropped."""
    if "query" not in interactions.columns:
        return interactions, {}
    kinds = interactions["event_type"].astype("string").map(
        lambda t: events.canonical(str(t)) if t is not pd.NA else None)
    query = interactions["query"].astype("string").str.strip()
    is_query = ((kinds == SEARCH) & interactions["item_id"].isna() & query.notna()
                & (query != "")).to_numpy(dtype=bool, na_value=False)
    rest = interactions.loc[~is_query].drop(columns=["query"])
    searches = interactions.loc[is_query]
    report: dict[str, Any] = {"searches": int(is_query.sum())}
    if not is_query.any():
        return rest, report
    rows: list[dict[str, Any]] = []
    unmatched = 0
    if items is not None and len(items):
        catalog = items.dropna(subset=["item_id"]).drop_duplicates("item_id", keep="last")
        content.item_vectors = content.vectorize(catalog)
        ids = catalog["item_id"].astype(str).to_numpy()
        matches = {q: content.match(q, SEARCH_MATCHES) for q in query[is_query].unique()}
        for (_, row), q in zip(searches.iterrows(), query[is_query], strict=True):
            found, scores = matches[q]
            if found.size == 0:
                unmatched += 1
                continue
            for item, score in zip(found.tolist(), scores.tolist(), strict=True):
                rows.append({**{c: row[c] for c in rest.columns}, "item_id": ids[item],
                             "event_type": SEARCH, "value": round(score / scores[0], 4)})
    else:
        unmatched = int(is_query.sum())
    report["searches_unmatched"] = unmatched
    report["search_rows"] = len(rows)
    if not rows:
        return rest, report
    added = pd.DataFrame(rows, columns=list(dict.fromkeys([*rest.columns, "value"])))
    out = pd.concat([rest.astype({c: object for c in ("user_id", "item_id", "event_type")
                                  if c in rest.columns}), added], ignore_index=True)
    for column in ("user_id", "item_id", "event_type"):
        out[column] = out[column].astype("category")
    return out, report
