"""The domain registry: names (and aliases) -> :class:`DomainSpec`.

Contract: :func:`default_registry` collects the ``DOMAINS`` tuple of every family module in
``FAMILIES``; adding a domain is one entry there (or one new module added to that list).
:meth:`DomainRegistry.get` raises :class:`UnknownDomain` (a ``ValueError``) naming the valid
domains. The registry is immutable once built.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from ..bounds import excerpt
from . import family_document, family_finance, family_media, family_retail
from .spec import DomainSpec

FAMILIES = (family_retail, family_finance, family_document, family_media)


class UnknownDomain(ValueError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown domain {excerpt(name)}; available domains: {', '.join(known)}")
        self.name = name


class DomainRegistry:
    """Immutable lookup of domains by name or alias."""

    def __init__(self, specs: Iterable[DomainSpec]) -> None:
        by_name: dict[str, DomainSpec] = {}
        for spec in specs:
            for key in (spec.name, *spec.aliases):
                if key in by_name:
                    raise ValueError(f"domain name {key!r} registered twice")
                by_name[key] = spec
        self._by_name = MappingProxyType(by_name)
        self._specs = tuple(dict.fromkeys(by_name.values()))

    def get(self, name: str) -> DomainSpec:
        spec = self._by_name.get(name)
        if spec is None:
            raise UnknownDomain(name, self.names())
        return spec

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Any:
        return iter(self._specs)

    def names(self) -> list[str]:
        """Canonical names, sorted."""
        return sorted(spec.name for spec in self._specs)

    def listing(self) -> list[dict[str, Any]]:
        """``GET /v1/domains`` entries (canonical names, then aliases)."""
        rows = [{"domain": s.name, "description": s.description, "inputs": list(s.inputs)}
                for s in sorted(self._specs, key=lambda s: s.name)]
        rows += [{"domain": alias, "description": f"Alias of {s.name}. {s.description}",
                  "inputs": list(s.inputs)}
                 for s in self._specs for alias in s.aliases]
        return rows


def default_registry() -> DomainRegistry:
    return DomainRegistry(spec for family in FAMILIES for spec in family.DOMAINS)
