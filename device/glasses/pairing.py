"""Pairing: only a display the wearer paired may talk to the HUD.

The HUD serves the wearer's messages, summaries and drafts, and obeys "send". Anything that can reach its port — a
web page in any browser on the machine (through the browser), a DNS-rebinding page, a device on the same network —
must be refused. A pairing secret is made at first start, kept sealed with the store's key in the state folder,
and shown to the wearer (a URL and a QR code in the terminal) to open on the display. Opening that URL sets a cookie
(HttpOnly, SameSite=Strict, Secure under TLS) that the page then carries; scripts send it as a bearer token.
Rotating the secret revokes every paired display at once.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import os
import platform
import secrets
from dataclasses import dataclass
from pathlib import Path

from device.privacy.crypto import Cipher, IntegrityError, load_or_create_key

COOKIE = "glassmate_pair"
HEADER = "authorization"  # "Bearer <token>", for scripts and tests
TOKEN_FILE = "hud-pairing.sealed"
_AAD = b"glassmate hud pairing v1"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


class PairingError(Exception):
    """A pairing secret that cannot be read or kept (tampered file, another device's key)."""


@dataclass(frozen=True)
class Pairing:
    token: str
    created: bool  # made now (first start or rotation): the wearer must be shown it

    def matches(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.token.encode())

    def url(self, base: str) -> str:
        """The pairing link: the secret rides in the #fragment, which no server, proxy or log ever sees."""
        return f"{base}/pair#{self.token}"

    def __repr__(self) -> str:  # never in a log line or a traceback by accident
        return f"Pairing(token=<{len(self.token)} chars>, created={self.created})"


def load_or_create(folder: Path, rotate: bool = False) -> Pairing:
    """The HUD's pairing secret in `folder`, sealed under the device key; made on first use or when rotated."""
    cipher = Cipher(load_or_create_key(folder))
    path = folder / TOKEN_FILE
    if path.exists() and not rotate:
        try:
            return Pairing(cipher.open(path.read_bytes(), _AAD), created=False)
        except (IntegrityError, OSError) as exc:
            raise PairingError(f"the HUD's pairing secret {path} cannot be opened ({exc}); make a new one with "
                               f"`glassmate hud --rotate-token` (paired displays will need pairing again)") from exc
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(path.name + ".partial")
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(cipher.seal(token, _AAD))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return Pairing(token, created=True)


def is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Host header values the HUD answers to (against DNS rebinding): loopback names, the address it is bound to
    (unless a wildcard), this machine's name, and names the wearer added."""
    hosts = [*LOOPBACK_NAMES, *extra]
    if bind not in ("0.0.0.0", "::", ""):
        hosts.append(bind)
    if not is_loopback(bind):
        name = platform.node()
        hosts += [name, f"{name}.local"]
    return list(dict.fromkeys(hosts))


def qr_text(data: str) -> str:
    """A QR code of `data` in terminal block characters (light modules on a dark terminal)."""
    import qrcode

    qr = qrcode.QRCode(border=2)
    qr.add_data(data)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()
