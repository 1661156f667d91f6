"""Mint a bearer token for an operator or a client program.

PD_JWT_SECRET=... python -m app.tokens --subject alice --scope predict --ttl 86400
python -m app.tokens --subject ops --scope admin --private-key jwt-private.pem   # RS256
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .auth import SCOPES, mint_token


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.tokens", description=__doc__.splitlines()[0])
    ap.add_argument("--subject", required=True, help="who the token is for (rate limits and A/B assignment follow it)")
    ap.add_argument("--scope", action="append", choices=SCOPES, help="repeatable; default: predict")
    ap.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    ap.add_argument("--private-key", type=Path, help="RS256: sign with this PEM private key instead of PD_JWT_SECRET")
    ap.add_argument("--issuer", default=os.environ.get("PD_JWT_ISSUER"))
    ap.add_argument("--audience", default=os.environ.get("PD_JWT_AUDIENCE"))
    a = ap.parse_args(argv)
    if a.private_key:
        key, alg = a.private_key.read_text(), "RS256"
    elif os.environ.get("PD_JWT_SECRET"):
        key, alg = os.environ["PD_JWT_SECRET"], "HS256"
    else:
        print("error: set PD_JWT_SECRET (HS256) or give --private-key (RS256)", file=sys.stderr)
        return 2
    try:
        token, _ = mint_token(a.subject, a.scope or ["predict"], a.ttl, key, alg, a.issuer, a.audience)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
