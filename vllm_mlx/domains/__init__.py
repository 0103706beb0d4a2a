"""Structured domain predictions: a local, VLM Run-compatible API (seeds 001 and 003).

Contract (``shared/specs/domains.md``): every domain of the seed's list (and the aliases
``media.tv-news`` / ``image.tv-news``) is a :class:`~.spec.DomainSpec` in a family module
(``family_*.py``) collected by :func:`~.registry.default_registry`: a bounded pydantic
schema, a prompt, a description and the input kinds it takes. Predictions are decoded under
that schema with llguidance (:mod:`.predictor`), validated before they are reported
``completed``, recorded in SQLite with uploaded files on disk (:mod:`.store`, :mod:`.files`),
run in the background for ``batch=true`` (:mod:`.service`) and delivered signed to
``callback_url`` (:mod:`.callbacks`). :mod:`.chat` adds ``vlmrun.domain`` and ``session_id`` to
chat completions. The feature is built by
:class:`~.feature.Domains` (before the chat feature it extends); its HTTP routes and
:func:`~.routes.install_domains` live in :mod:`.routes`.
"""

from .registry import DomainRegistry, UnknownDomain, default_registry
from .spec import DomainSpec

__all__ = ["DomainRegistry", "DomainSpec", "UnknownDomain", "default_registry"]
