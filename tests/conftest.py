"""Project-wide test fixtures and guards.

The network guard lets tests reach loopback and Unix sockets only: nothing in the
suite may touch the internet (DEVELOPERS.md, promise 5).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import pytest

from tests.factories import ClassFactory, EnrollmentFactory, TenantFactory, UserFactory, district_admin
from tutoring_core.accounts.models import Role, Tenant, User
from tutoring_core.classes.models import Class

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "testserver"}


class NetworkBlocked(RuntimeError):
    pass


def _is_loopback_host(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family == socket.AF_UNIX:
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback_host(host):
        raise NetworkBlocked(f"Tests may only connect to loopback, not {address!r}.")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not _is_loopback_host(host):
        try:
            ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
        except ValueError:
            # Name lookups would leave the machine; tests use IP literals or localhost.
            raise socket.gaierror(socket.EAI_NONAME, f"Tests may not resolve {host!r}.") from None
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo


@dataclass
class Personas:
    """Three people for every tenant-facing view (STYLE.md, Tests).

    owner: the person the object belongs to (here a teacher enrolled in ``klass``);
    same_tenant_other: another role in the same tenant, not in the class;
    other_tenant: a district admin of another tenant (the most privileged outsider).
    """

    tenant: Tenant
    klass: Class
    owner: User
    same_tenant_other: User
    other_tenant: User
    other_tenant_obj: Tenant


@pytest.fixture(autouse=True)
def _tool_key_cache_clear() -> None:
    """The LTI tool keeps its signing key in the process for 30 s (lti_tool.keys); the
    key is a row the previous test's database discarded. Kept, a test could publish
    that key and then, once the 30 s pass, sign with a new one the platform never saw
    ("Unable to find public key" on a loaded CI machine)."""
    from lti_tool import keys

    keys.key_cache_clear()


@pytest.fixture
def personas(db: Any) -> Personas:
    tenant = TenantFactory(slug="north", name="North District")
    klass = ClassFactory(tenant=tenant, title="Algebra I")
    owner = UserFactory(tenant=tenant, username="owner")
    EnrollmentFactory(klass=klass, user=owner, role=Role.TEACHER)
    same = UserFactory(tenant=tenant, username="bystander")
    other_tenant = TenantFactory(slug="south", name="South District")
    outsider = district_admin(other_tenant, username="south-admin")
    return Personas(
        tenant=tenant,
        klass=klass,
        owner=owner,
        same_tenant_other=same,
        other_tenant=outsider,
        other_tenant_obj=other_tenant,
    )
