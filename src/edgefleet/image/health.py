"""Health check run inside the image: ``python3 -m edgefleet.image.health URL`` exits 0 when ready.

The image has no shell and no curl; this is its ``HEALTHCHECK`` command (stdlib only, fast to start).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

__all__ = ["check", "main"]


def check(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 2xx within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a local http URL from the image config
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when the URL (default the server's readiness endpoint) is ready, else 1."""
    args = sys.argv[1:] if argv is None else argv
    return 0 if check(args[0] if args else "http://127.0.0.1:8000/v2/health/ready") else 1


if __name__ == "__main__":
    sys.exit(main())
