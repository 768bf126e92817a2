"""Where a server may listen: beyond localhost only with a token (no web stack imported, so
``amberlite serve --host 0.0.0.0`` without one fails at once)."""

from __future__ import annotations

from amberlite.errors import StoreError

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond localhost without a token."""
    if host not in LOCAL_HOSTS and not token:
        raise StoreError(
            f"refusing to listen on {host} without a token: pass --token or set "
            "AMBERLITE_TOKEN (only 127.0.0.1 / localhost may go without one)"
        )
