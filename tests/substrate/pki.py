"""The control plane's certificates: a local CA and everything it signs.

Why: kube-apiserver only serves TLS, authenticates clients by certificate and signs
service-account tokens, so a cluster needs a CA, a serving certificate, a token signing key and
one client certificate per component. Keys are ECDSA P-256 because they are generated on every
start (a fresh cluster each time) and P-256 takes microseconds where RSA takes tens of
milliseconds.

Identities (user is the certificate's CN, groups its O):
- admin: `kubernetes-admin` in `system:masters`, for kubectl, helm and the tests.
- controller-manager and scheduler: the users their default RBAC roles are bound to.
- kubelet: `substrate-kubelet` in `system:masters`. One test kubelet serves several nodes, so
  the Node authorizer, which limits a kubelet to its own node, cannot apply.
- apiserver-kubelet-client: what kube-apiserver presents to the kubelet for `kubectl logs`.
- front-proxy-client: what kube-apiserver presents to aggregated API servers (signed by the
  same CA, which is also the request-header CA: fine for a throwaway test cluster).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Names the apiserver's serving certificate covers: what in-cluster clients dial.
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
#: 10.0.0.1 is the `kubernetes` Service's ClusterIP in --service-cluster-ip-range=10.0.0.0/24.
APISERVER_IPS = ("127.0.0.1", "10.0.0.1")

#: The identity kube-apiserver uses towards aggregated API servers (its "front proxy").
FRONT_PROXY_CLIENT = "front-proxy-client"

_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Where each piece of the cluster's PKI lives on disk."""

    ca: KeyPair
    apiserver: KeyPair
    service_account_key: Path
    service_account_pub: Path
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    kubelet: KeyPair
    kubelet_serving: KeyPair
    apiserver_kubelet_client: KeyPair
    front_proxy_client: KeyPair

    @staticmethod
    def at(directory: Path) -> Pki:
        """The layout under `directory` (whether or not the files exist yet)."""

        def pair(name: str) -> KeyPair:
            return KeyPair(directory / f"{name}.crt", directory / f"{name}.key")

        return Pki(
            ca=pair("ca"),
            apiserver=pair("apiserver"),
            service_account_key=directory / "sa.key",
            service_account_pub=directory / "sa.pub",
            admin=pair("admin"),
            controller_manager=pair("controller-manager"),
            scheduler=pair("scheduler"),
            kubelet=pair("kubelet"),
            kubelet_serving=pair("kubelet-serving"),
            apiserver_kubelet_client=pair("apiserver-kubelet-client"),
            front_proxy_client=pair("front-proxy-client"),
        )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    *,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    organizations: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
    now: dt.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    alt_names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def generate_pki(directory: Path, *, node_names: tuple[str, ...] = ()) -> Pki:
    """Create a fresh CA and every certificate the cluster needs under `directory`.

    `node_names` are added to the kubelet's serving certificate (the apiserver dials the
    kubelet by IP, 127.0.0.1, so they are a courtesy for other clients).
    """
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki.at(directory)
    now = dt.datetime.now(dt.UTC)

    ca_key = _new_key()
    ca_name = _name("stepstone-substrate-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki.ca.key, ca_key)
    _write_cert(pki.ca.cert, ca_cert)

    def issue(
        pair: KeyPair,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
    ) -> None:
        key, cert = _issue(
            ca_key=ca_key,
            ca_cert=ca_cert,
            common_name=common_name,
            organizations=organizations,
            dns_names=dns_names,
            ips=ips,
            server=server,
            client=client,
            now=now,
        )
        _write_key(pair.key, key)
        _write_cert(pair.cert, cert)

    issue(
        pki.apiserver,
        "kube-apiserver",
        dns_names=APISERVER_DNS_NAMES,
        ips=APISERVER_IPS,
        server=True,
    )
    issue(pki.admin, "kubernetes-admin", organizations=("system:masters",), client=True)
    issue(pki.controller_manager, "system:kube-controller-manager", client=True)
    issue(pki.scheduler, "system:kube-scheduler", client=True)
    issue(pki.kubelet, "substrate-kubelet", organizations=("system:masters",), client=True)
    issue(
        pki.kubelet_serving,
        "substrate-kubelet-serving",
        dns_names=("localhost", *node_names),
        ips=("127.0.0.1",),
        server=True,
    )
    issue(
        pki.apiserver_kubelet_client,
        "kube-apiserver-kubelet-client",
        organizations=("system:masters",),
        client=True,
    )

    issue(pki.front_proxy_client, FRONT_PROXY_CLIENT, client=True)

    sa_key = _new_key()
    _write_key(pki.service_account_key, sa_key)
    pki.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
