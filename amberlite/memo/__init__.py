"""The Parquet value store: write aside, commit in one catalog transaction, read, compact.

``amberlite.memo.key`` (MemoKey, memo_key) and ``amberlite.memo.store`` (MemoStore).
"""
