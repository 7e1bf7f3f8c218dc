"""Locate the data folders (kernels/, search_spaces/, hw_profiles/) in an installed wheel or in a checkout."""

from __future__ import annotations

import pathlib

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
_NAMES = ("kernels", "search_spaces", "hw_profiles")


def data_dir(name: str) -> pathlib.Path:
    """Return the folder `name`, preferring the copy shipped inside the package (`woodpecker/_data/`)."""
    if name not in _NAMES:
        raise ValueError(f"unknown data folder {name!r}; expected one of {_NAMES}")
    shipped = _PACKAGE_DIR / "_data" / name
    if shipped.is_dir():
        return shipped
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"woodpecker data folder {name!r} is missing from {shipped} and {checkout}")
