"""Who holds a lease: a replica's stable name plus the nonce of this start (docs/replicas.md).

Every lease in the push store is written under an owner token `<replica id>/<nonce>`. The replica id is stable (the
config's `storage.replica_id`, else `GATEWAY_REPLICA_ID`, else the host name), so a replica that restarts knows which
leases it held before and takes them back at once instead of waiting for them to expire. The nonce is new on every
start, so the leases of the earlier start and of this one are never confused: a process that lost its leases while
it was paused cannot settle work that a later start (or another replica) has taken since.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.settings import REPLICA_ID, ConfigError

#: The environment variable that names the replica when the config does not.
REPLICA_ID_ENV = "GATEWAY_REPLICA_ID"


@dataclass(frozen=True, slots=True)
class ReplicaIdentity:
    replica_id: str
    nonce: str
    started_at: float  # epoch seconds

    @property
    def token(self) -> str:
        """What the store writes as a lease's owner."""
        return f"{self.replica_id}/{self.nonce}"

    @classmethod
    def start(cls, configured: str = "", env: Mapping[str, str] | None = None) -> ReplicaIdentity:
        """This process's identity: the configured name, else GATEWAY_REPLICA_ID, else the host name; a new nonce."""
        environ = os.environ if env is None else env
        name = configured or environ.get(REPLICA_ID_ENV, "") or _host_name()
        if not REPLICA_ID.fullmatch(name):
            raise ConfigError(
                f"replica id {name!r} (from {'the config' if configured else REPLICA_ID_ENV + ' or the host name'})"
                " may hold only letters, digits, '.', '-' and '_' (at most 64)"
            )
        return cls(name, secrets.token_hex(4), time.time())


def replica_of(token: str) -> str:
    """The replica id of an owner token (the token itself when it has no nonce)."""
    return token.rpartition("/")[0] or token


def _host_name() -> str:
    # A host name may be an FQDN longer than a replica id allows; its first label names the machine.
    return socket.gethostname().split(".")[0][:64] or "gateway"
