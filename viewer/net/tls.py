"""Certificates for mutual TLS between shmview peers, made with the ``cryptography`` package.

A CA folder holds ``ca.pem`` and ``ca-key.pem`` (the CA's key: it never leaves that
folder) and, like every host folder, ``cert.pem`` and ``key.pem`` for one host. A host
folder made by ``issue`` holds ``ca.pem``, ``cert.pem`` and ``key.pem`` only. Folders are
0700 and private keys 0600. Keys are ECDSA P-256; host certificates are good for both ends
of a link (server and client), and name the host names given plus ``localhost`` and
127.0.0.1, because Zenoh checks the name a peer is reached by (``verify_name_on_connect``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from viewer.errors import CertificateError, NetError

CA_CERT, CA_KEY, CERT, KEY = "ca.pem", "ca-key.pem", "cert.pem", "key.pem"
CA_DAYS = 3650
HOST_DAYS = 825  # a host certificate is renewed with `shmview tls issue` before then
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
_SKEW = datetime.timedelta(days=1)  # valid from a day back: peers' clocks need not agree to the second


def _crypto() -> Any:
    try:
        from cryptography import x509
    except ImportError:
        raise NetError("TLS certificates need the cryptography package: pip install 'shmview[net]'") from None
    return x509


def _new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> Any:
    x509 = _crypto()
    return x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)])


def _dated(builder: Any, days: int) -> Any:
    now = datetime.datetime.now(datetime.timezone.utc)
    x509 = _crypto()
    return (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def make_ca(common_name: str = "shmview CA", days: int = CA_DAYS) -> tuple[Any, Any]:
    """(key, certificate) of a new CA that may sign host certificates only (path length 0)."""
    from cryptography.hazmat.primitives import hashes

    x509, key = _crypto(), _new_key()
    usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        _dated(x509.CertificateBuilder(), days)
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return key, builder.sign(key, hashes.SHA256())


def _alt_names(hosts: Sequence[str]) -> Any:
    x509, names = _crypto(), []
    for host in dict.fromkeys([*hosts, *LOOPBACK_NAMES]):  # in order, once each
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_host(ca_key: Any, ca_cert: Any, hosts: Sequence[str], days: int = HOST_DAYS) -> tuple[Any, Any]:
    """(key, certificate) for a host reached by any of ``hosts``, signed by the CA."""
    from cryptography.hazmat.primitives import hashes

    x509, key = _crypto(), _new_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    both_ends = x509.ExtendedKeyUsage(
        [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    builder = (
        _dated(x509.CertificateBuilder(), days)
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(both_ends, critical=False)
        .add_extension(_alt_names(hosts), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    return key, builder.sign(ca_key, hashes.SHA256())


# -- folders ------------------------------------------------------------------------------


def _private_folder(folder: Path) -> None:
    """Create ``folder`` 0700, or take an existing one that is ours and holds no key yet."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise CertificateError(f"{folder} must be a folder of yours", path=str(folder))
    taken = [name for name in (CA_KEY, KEY, CERT) if (folder / name).exists()]
    if taken:
        raise CertificateError(f"{folder} already holds {', '.join(taken)}: not overwriting it", path=str(folder))
    folder.chmod(0o700)


def _write(path: Path, data: bytes, mode: int) -> None:
    """A new file made with its final mode: a key is never readable by others, not even
    for a moment."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem(obj: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    if hasattr(obj, "private_bytes"):
        return obj.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    return obj.public_bytes(serialization.Encoding.PEM)


def _write_host(folder: Path, ca_cert: Any, key: Any, cert: Any) -> None:
    _write(folder / CA_CERT, _pem(ca_cert), 0o644)
    _write(folder / CERT, _pem(cert), 0o644)
    _write(folder / KEY, _pem(key), 0o600)


def init(folder: Path, hosts: Sequence[str], days: int = HOST_DAYS) -> None:
    """A new CA in ``folder`` and a first host certificate beside it."""
    _private_folder(folder)
    if (folder / CA_CERT).exists():
        raise CertificateError(f"{folder} already holds {CA_CERT}: not overwriting it", path=str(folder))
    ca_key, ca_cert = make_ca()
    _write(folder / CA_KEY, _pem(ca_key), 0o600)
    _write_host(folder, ca_cert, *make_host(ca_key, ca_cert, hosts, days))


def issue(ca_folder: Path, folder: Path, hosts: Sequence[str], days: int = HOST_DAYS) -> None:
    """A certificate for another host, signed by the CA in ``ca_folder``, written to
    ``folder`` with the CA's certificate (never its key)."""
    ca_key, ca_cert = _load_ca(ca_folder)
    if folder.resolve() == ca_folder.resolve():
        raise CertificateError(f"{folder} is the CA folder: issue into a folder of the new host's own")
    _private_folder(folder)
    _write_host(folder, ca_cert, *make_host(ca_key, ca_cert, hosts, days))


def _load_ca(folder: Path) -> tuple[Any, Any]:
    from cryptography.hazmat.primitives import serialization

    x509 = _crypto()
    key_path = folder / CA_KEY
    private_file(key_path)
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"{folder} is not a CA folder made by `shmview tls init`: {exc}") from None
    return key, cert


def private_file(path: Path) -> None:
    """A private key must be a regular file of ours that no one else may read (as ssh
    requires of its keys)."""
    try:
        st = path.lstat()
    except OSError as exc:
        raise CertificateError(f"cannot use {path}: {exc.strerror}", path=str(path)) from None
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise CertificateError(
            f"{path} must be a file of yours that only you can read (chmod 600 {path})", path=str(path)
        )


def zenoh_settings(folder: Path) -> dict[str, Any]:
    """Zenoh's ``transport/link/tls`` settings for the host folder ``folder``: mutual TLS,
    this host's certificate at both ends of its links, peers' names checked. The folder is
    checked first, so a mistake is one clear line, not a silent refusal by every peer."""
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise CertificateError(f"--tls {folder}: no such folder (make one with `shmview tls init`)")
    ca, cert, key = folder / CA_CERT, folder / CERT, folder / KEY
    private_file(key)
    _check_chain(ca, cert)
    return {
        "root_ca_certificate": str(ca),
        "enable_mtls": True,
        "verify_name_on_connect": True,
        "listen_certificate": str(cert),
        "listen_private_key": str(key),
        "connect_certificate": str(cert),
        "connect_private_key": str(key),
    }


def _check_chain(ca_path: Path, cert_path: Path) -> None:
    from cryptography.exceptions import InvalidSignature

    x509 = _crypto()
    try:
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"--tls {cert_path.parent}: {exc} (make one with `shmview tls init`)") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateError(f"{cert_path} is not signed by the CA in {ca_path}") from None
    now = datetime.datetime.now(datetime.timezone.utc)
    for path, c in ((ca_path, ca), (cert_path, cert)):
        if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
            raise CertificateError(
                f"{path} is valid from {c.not_valid_before_utc:%Y-%m-%d} to "
                f"{c.not_valid_after_utc:%Y-%m-%d} only (issue a new one)"
            )
