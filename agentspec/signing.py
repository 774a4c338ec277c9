"""Ed25519 keys for signed chain heads (docs/runtime.md, "Signed chain heads"): key material in, the forms the
runtime's secret, an auditor's public-key file and the head entries' `key_id` take out.

The runtime's secret holds the private key as PKCS#8 (PEM, or its DER as one base64 line, which fits a
`.dev.vars` line); the public key is distributed as a PEM SubjectPublicKeyInfo (what `openssl pkey -pubout`
writes and `agentspec trace verify --public-key` reads) or as the raw 32 bytes in base64url or hex.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class PublicKeyError(ValueError):
    """Text that holds no Ed25519 public key in a form this module reads."""


def local_key(name: str) -> Ed25519PrivateKey:
    """A key pair for local runs of agent `name` (tests, `agentspec dev`, the workbench): derived from the name,
    so a restart or a reload keeps verifying the heads it signed before. Public by construction: never deploy it."""
    seed = hashlib.sha256(f"agentspec local signing key\0{name}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def private_secret(key: Ed25519PrivateKey) -> str:
    """The value of the signing secret: the PKCS#8 DER in base64, one line."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return base64.b64encode(der).decode("ascii")


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of sha256 over the raw public key, as the runtime's `heads.ts` writes it."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from PEM (SubjectPublicKeyInfo), or the raw 32 bytes as hex or base64url/base64."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(stripped.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise PublicKeyError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise PublicKeyError(f"a {type(key).__name__.removesuffix('PublicKey').removeprefix('_')} key, not Ed25519")
        return key
    if _HEX.match(stripped):
        raw = bytes.fromhex(stripped)
    else:
        try:
            raw = base64.urlsafe_b64decode(stripped.replace("+", "-").replace("/", "_") + "=" * (-len(stripped) % 4))
        except (binascii.Error, ValueError) as exc:
            raise PublicKeyError("neither PEM, hex nor base64") from exc
    if len(raw) != 32:
        raise PublicKeyError(f"a raw Ed25519 public key is 32 bytes, this is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)
