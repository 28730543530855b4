"""Keys and authenticated encryption for everything stored on the glasses.

The key is 32 random bytes in a file with 0600 permissions, or derived from a passphrase with scrypt (salt
in a file beside it). Two subkeys come from it by HKDF: one for AES-256-GCM, one for HMAC "blind indexes"
that let the store look rows up by thread or deduplicate messages without storing names in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

KEY_BYTES = 32
NONCE_BYTES = 12
PASSPHRASE_ENV = "GLASSMATE_PASSPHRASE"


class KeyFileError(Exception):
    """A missing, unreadable or too-open key file, or a wrong key."""


class IntegrityError(Exception):
    """Ciphertext that fails authentication: tampered, corrupted, or sealed under another key."""


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_key(folder: Path, passphrase: str | None = None) -> bytes:
    """The device key kept in `folder`: from the passphrase (scrypt) if one is given or set in
    GLASSMATE_PASSPHRASE, else from `folder/key`, created on first use."""
    passphrase = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
    if passphrase:
        salt_file = folder / "key.salt"
        if not salt_file.exists():
            _write_secret(salt_file, os.urandom(16))
        kdf = Scrypt(salt=salt_file.read_bytes(), length=KEY_BYTES, n=2**15, r=8, p=1)
        return kdf.derive(passphrase.encode("utf-8"))
    key_file = folder / "key"
    if not key_file.exists():
        _write_secret(key_file, os.urandom(KEY_BYTES))
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"key file {key_file} is readable by others (mode {mode:o}); run: chmod 600 {key_file}")
    key = key_file.read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"key file {key_file} holds {len(key)} bytes, expected {KEY_BYTES}: it is damaged")
    return key


class Cipher:
    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise KeyFileError(f"a glassmate key is {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(self._subkey(key, b"glassmate aes-gcm v1"))
        self._mac_key = self._subkey(key, b"glassmate blind-index v1")

    @staticmethod
    def _subkey(key: bytes, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)

    def seal(self, plaintext: str, aad: bytes) -> bytes:
        return self.seal_bytes(plaintext.encode("utf-8"), aad)

    def open(self, blob: bytes, aad: bytes) -> str:
        return self.open_bytes(blob, aad).decode("utf-8")

    def seal_bytes(self, data: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, aad)

    def open_bytes(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError) as exc:
            raise IntegrityError("ciphertext failed authentication") from exc

    def blind(self, *parts: str) -> str:
        """A keyed digest of `parts`: equal inputs give equal digests, but it reveals nothing without the key."""
        mac = hmac.new(self._mac_key, digestmod=hashlib.sha256)
        for part in parts:
            data = part.encode("utf-8")
            mac.update(len(data).to_bytes(4, "big") + data)
        return mac.hexdigest()
