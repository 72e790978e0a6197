"""Who is on the other end of a Unix socket: SO_PEERCRED (Linux), LOCAL_PEERCRED (macOS).

File permissions already keep other users out (0600 socket in a 0700 dir);
checking the peer's uid on connect is the second lock on the door.
"""

from __future__ import annotations

import os
import socket
import struct
import sys

_SOL_LOCAL = 0  # macOS <sys/un.h>
_LOCAL_PEERCRED = 0x001
# cr_version, cr_uid (uid_t: unsigned), cr_ngroups, cr_groups[16]
_XUCRED = struct.Struct("IIh16I")
_UCRED = struct.Struct("iII")  # Linux: pid, uid, gid (uid_t and gid_t are unsigned)


def peer_uid(sock: socket.socket) -> int | None:
    """The connecting process's uid, or None where the platform cannot tell."""
    try:
        if sys.platform.startswith("linux"):
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
            return int(_UCRED.unpack(creds)[1])
        if sys.platform == "darwin":
            raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED.size)
            return int(_XUCRED.unpack_from(raw.ljust(_XUCRED.size, b"\0"))[1])
    except (OSError, struct.error):
        return None
    return None


def allowed(uid: int) -> bool:
    return uid == os.getuid()
