#!/usr/bin/env python3
"""Generate kwtop's embedded grid-intensity assets from the shared reference data.

    python3 scripts/gen-grid-assets.py [DATA_DIR] [OUT_DIR]

DATA_DIR defaults to ../shared/data relative to the repository root (the parent of this
script's folder); OUT_DIR defaults to <repo>/crates/kwtop-core/assets/grid. Requires `pip install pycountry`.

Writes:
  country.csv  iso2,iso3,country,year,g_co2e_per_kwh,source
               = carbon_intensity_by_country.csv with the ISO 3166-1 alpha-2 code prepended
               (WLD -> empty iso2, EUU -> EU, XKX (Kosovo, not in ISO 3166-1) -> XK, the
               user-assigned code in common use). Other columns are copied verbatim.
  cloud.csv    verbatim copy of cloud_region_intensity.csv (checked to have 5 fields a row).
"""
import csv
import io
import shutil
import sys
from pathlib import Path

import pycountry

# Codes that pycountry does not know, or that need a fixed value.
SPECIAL_ALPHA2 = {"WLD": "", "EUU": "EU", "XKX": "XK"}


def alpha2(iso3: str) -> str:
    if iso3 in SPECIAL_ALPHA2:
        return SPECIAL_ALPHA2[iso3]
    c = pycountry.countries.get(alpha_3=iso3)
    if c is None:
        sys.exit(f"gen-grid-assets: no ISO 3166-1 alpha-2 code for {iso3!r}; add it to SPECIAL_ALPHA2")
    return c.alpha_2


def main() -> None:
    repo = Path(__file__).resolve().parent.parent
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else repo.parent / "shared" / "data"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else repo / "crates" / "kwtop-core" / "assets" / "grid"
    out.mkdir(parents=True, exist_ok=True)

    with open(data / "carbon_intensity_by_country.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    if header != ["iso3", "country", "year", "g_co2e_per_kwh", "source"]:
        sys.exit(f"gen-grid-assets: unexpected country header {header}")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["iso2"] + header)
    seen = set()
    for r in body:
        if len(r) != 5:
            sys.exit(f"gen-grid-assets: bad country row {r}")
        a2 = alpha2(r[0])
        if a2 and a2 in seen:
            sys.exit(f"gen-grid-assets: duplicate alpha-2 {a2}")
        seen.add(a2)
        w.writerow([a2] + r)
    (out / "country.csv").write_text(buf.getvalue(), encoding="utf-8")

    src = data / "cloud_region_intensity.csv"
    with open(src, newline="", encoding="utf-8") as f:
        for r in csv.reader(f):
            if len(r) != 5:
                sys.exit(f"gen-grid-assets: bad cloud row {r}")
    shutil.copyfile(src, out / "cloud.csv")
    print(f"wrote {out / 'country.csv'} ({len(body)} rows) and {out / 'cloud.csv'}")


if __name__ == "__main__":
    main()
