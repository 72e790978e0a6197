"""What the daemon and its clients share: the wire format, reply types, paths, start-up, playback.

`kokorod` (the daemon) and `kokorod_client` both import this package and never each other.
"""

__version__ = "0.1.0"  # the one version of daemon, client and protocol library
