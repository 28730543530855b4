"""What a federated round over a network needs so that no stranger can join it or read it: a CA and the
SuperLink's TLS certificate (the glasses verify the server against the CA), and one EC key pair per pair of
glasses (SuperNode authentication: the SuperLink admits only nodes whose public key the operator registered).

Keys are made with `cryptography`, written owner-only (0600), and never overwritten: a node keeps its identity
across restarts, and a second `glassmate fl keys` on the same folder reuses it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 365


@dataclass(frozen=True)
class ServerCredentials:
    ca_cert: Path  # what every node is given to verify the SuperLink
    cert: Path
    key: Path


@dataclass(frozen=True)
class NodeKeys:
    private: Path  # stays on the glasses (flower-supernode --auth-supernode-private-key)
    public: Path  # what the operator registers (flwr supernode register)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def server_credentials(folder: Path, hosts: list[str]) -> ServerCredentials:
    """A CA and a SuperLink certificate for `hosts` (names or IPs the nodes dial), made once in `folder`."""
    out = ServerCredentials(folder / "ca.crt", folder / "superlink.crt", folder / "superlink.key")
    if out.ca_cert.exists() and out.cert.exists() and out.key.exists():
        return out
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = (x509.CertificateBuilder().subject_name(_name("glassmate federation CA")).issuer_name(
        _name("glassmate federation CA")).public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA384()))
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA384()))
    folder.mkdir(parents=True, exist_ok=True)
    out.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(out.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return out


def node_keys(folder: Path) -> NodeKeys:
    """This node's key pair (OpenSSH-format EC P-384, what Flower's SuperNode authentication reads), made once."""
    out = NodeKeys(folder / "node_key", folder / "node_key.pub")
    if out.private.exists() and out.public.exists():
        return out
    key = ec.generate_private_key(ec.SECP384R1())
    _write_private(out.private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                  serialization.NoEncryption()))
    out.public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                         serialization.PublicFormat.OpenSSH) + b"\n")
    return out
