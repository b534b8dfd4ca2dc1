"""Write a first `.env` from `.env.example` with fresh random secrets (used by `make run`)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

GENERATED = {
    "JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "DOXA_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(12),
    "WEBHOOK_SECRET": lambda: secrets.token_urlsafe(32),
}


def main(source: str, target: str) -> None:
    lines = []
    for line in Path(source).read_text().splitlines():
        name = line.split("=", 1)[0].strip()
        if name in GENERATED and not line.lstrip().startswith("#"):
            value = GENERATED[name]()
            line = f"{name}={value}"
            if name == "DOXA_ADMIN_PASSWORD":
                print(f"first admin password (also in {target}): {value}")
        lines.append(line)
    Path(target).write_text("\n".join(lines) + "\n")
    Path(target).chmod(0o600)
    print(f"wrote {target} with fresh secrets")


if __name__ == "__main__":
    main(*sys.argv[1:3])
