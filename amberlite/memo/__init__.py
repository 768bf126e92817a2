"""The Parquet value store: write aside, commit in one catalog transaction, read, compact."""

from amberlite.memo.key import MemoKey, memo_key
from amberlite.memo.store import MemoStore

__all__ = ["MemoKey", "memo_key", "MemoStore"]
