"""A local certificate authority for the registry this project runs on the manager.

Every node's engine must pull over TLS (Docker refuses plain HTTP unless each engine is
told to allow it); with no public name to get a certificate for, the project makes its
own CA once, and a server certificate for the manager's address signed by it. Engines
trust the CA through ``/etc/docker/certs.d/<host:port>/ca.crt`` (on workers, the
join command says how). Keys are written readable by root only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

YEARS = 10


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def _key_bytes(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject, issuer, public_key, signing_key, extensions) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=365 * YEARS)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def ensure_ca(folder: str) -> str:
    """The CA's certificate file in ``folder`` (made once; its key stays there)."""
    cert_path, key_path = os.path.join(folder, "ca.crt"), os.path.join(folder, "ca.key")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path
    os.makedirs(folder, mode=0o700, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("tljh-rees registry CA")
    cert = _certificate(name, name, key.public_key(), key, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                       content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, encipher_only=False,
                       decipher_only=False), True)])
    _write(key_path, _key_bytes(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path


def ensure_server_certificate(folder: str, host: str) -> tuple[str, str]:
    """(certificate, key) files for ``host`` (an IP address or a name), signed by the CA
    in ``folder``; remade when the host changes."""
    ca_path = ensure_ca(folder)
    cert_path, key_path = os.path.join(folder, "server.crt"), os.path.join(folder, "server.key")
    if os.path.exists(cert_path) and os.path.exists(key_path) and _names(cert_path) == {host}:
        return cert_path, key_path
    with open(ca_path, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(folder, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    cert = _certificate(_name(host), ca.subject, key.public_key(), ca_key, [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.SubjectAlternativeName([alt]), False),
        (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)])
    _write(key_path, _key_bytes(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _names(cert_path: str) -> set[str]:
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in alt.get_values_for_type(x509.IPAddress)} | set(
        alt.get_values_for_type(x509.DNSName))
