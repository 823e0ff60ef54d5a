"""A throwaway PostgreSQL cluster from the installed binaries, for machines where no server runs.

The harness lives in voltpay.devservers, shared with `make bench`; this module keeps the old
import path working.
"""

from __future__ import annotations

from voltpay.devservers import NoPostgres, throwaway_cluster

__all__ = ["NoPostgres", "throwaway_cluster"]
