"""Adapter hubs: where relay revisions live. See :mod:`fedem.hub.base` for the contract."""

from fedem.hub.base import Hub, Revision, default_hub_url, format_revisions, open_hub, register_backend

__all__ = ["Hub", "Revision", "default_hub_url", "format_revisions", "open_hub", "register_backend"]
