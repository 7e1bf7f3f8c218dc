"""Tuning records: what was measured, where, with which toolchain; SQLite storage and JSONL exchange."""

from woodpecker.records.db import RecordsDatabase, open_database
from woodpecker.records.schema import Device, TuningRecord

__all__ = ["Device", "RecordsDatabase", "TuningRecord", "open_database"]
