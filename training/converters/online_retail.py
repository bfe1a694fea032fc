"""Convert the UCI "Online Retail" log (CSV, UTF-8 with a byte-order mark) into recsvc's
input files. The data stays where it is; this writes interactions, items and users.

    python -m training.converters.online_retail online_retail_non_uk.csv OUT_DIR

- a row with a CustomerID and a positive Quantity is a `purchase` with `value` = Quantity;
- an invoice starting with `C` (negative Quantity) is a `refund` of |Quantity| units;
- rows without a CustomerID are anonymous: they count for nothing and are left out;
- items: StockCode, with the most frequent Description as title and the median UnitPrice;
- users: CustomerID with Country as the `region` attribute.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from recsvc.core.errors import InputError

COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
           "CustomerID", "Country")


def read_online_retail(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, encoding="utf-8-sig", dtype={"InvoiceNo": str, "StockCode": str,
                                                             "CustomerID": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"online-retail file {path}: unreadable ({exc})") from None
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise InputError(f"online-retail file {path}: missing column '{missing[0]}'")
    raw["CustomerID"] = raw["CustomerID"].str.replace(r"\.0$", "", regex=True).str.strip()
    raw["InvoiceDate"] = pd.to_datetime(raw["InvoiceDate"], format="%d-%m-%Y %H:%M", utc=True)
    return raw


def convert(raw: pd.DataFrame) -> dict[str, pd.DataFrame]:
    known = raw[raw["CustomerID"].notna() & (raw["CustomerID"] != "")]
    refund = known["InvoiceNo"].str.startswith("C") | (known["Quantity"] < 0)
    interactions = pd.DataFrame({
        "user_id": known["CustomerID"],
        "item_id": known["StockCode"].str.strip(),
        "event_type": refund.map({True: "refund", False: "purchase"}),
        "timestamp": known["InvoiceDate"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "value": known["Quantity"].abs(),
    })
    interactions = interactions[interactions["value"] > 0]
    sold = raw[raw["Quantity"] > 0]
    items = sold.groupby(sold["StockCode"].str.strip()).agg(
        title=("Description", lambda d: d.mode().iloc[0] if d.notna().any() else ""),
        price=("UnitPrice", "median"),
    ).reset_index(names="item_id")
    users = (known.groupby("CustomerID")["Country"].agg(lambda c: c.mode().iloc[0])
             .reset_index().rename(columns={"CustomerID": "user_id", "Country": "region"}))
    return {"interactions": interactions, "items": items, "users": users}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Convert UCI Online Retail into recsvc inputs.")
    p.add_argument("source", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    try:
        tables = convert(read_online_retail(args.source))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    args.out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(args.out / f"{name}.csv", index=False)
        print(f"{args.out / (name + '.csv')}: {len(table):,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
