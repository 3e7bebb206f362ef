"""The REST API (FastAPI, under ``/api/v1``): :func:`create_app`. Every route calls the services and queries the CLI
calls; see :mod:`biobank.api.app`."""

from biobank.api.app import create_app

__all__ = ["create_app"]
