"""The domain registry and its schemas, without a model: every seed domain is there, every
schema is one llguidance can enforce completely, and every string the date patterns admit
is a real date."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

import llguidance
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_mlx.domains.catalog import gql_statement
from vllm_mlx.domains.fields import DATE_PATTERN, DATETIME_PATTERN
from vllm_mlx.domains.registry import DomainRegistry, UnknownDomain, default_registry
from vllm_mlx.domains.spec import DomainSpec

SEED_DOMAINS = (
    "aerospace.remote-sensing", "document.ocr", "document.generative", "document.invoice",
    "document.markdown", "document.presentation", "document.receipt", "document.resume",
    "document.utility-bill", "image.caption", "retail.product-catalog",
    "retail.ecommerce-product-caption", "video.tv-news", "video.caption", "video.commentary",
)
REGISTRY = default_registry()


def test_every_seed_domain_and_alias_is_registered():
    assert sorted(SEED_DOMAINS) == REGISTRY.names()
    assert REGISTRY.get("media.tv-news") is REGISTRY.get("video.tv-news")
    assert REGISTRY.get("image.tv-news") is REGISTRY.get("video.tv-news")
    listed = {row["domain"] for row in REGISTRY.listing()}
    assert listed == {*SEED_DOMAINS, "media.tv-news", "image.tv-news"}


def test_unknown_domain_names_the_valid_ones():
    with pytest.raises(UnknownDomain, match="document.invoice"):
        REGISTRY.get("document.nope")


def test_a_name_cannot_be_registered_twice():
    spec = REGISTRY.get("image.caption")
    with pytest.raises(ValueError, match="twice"):
        DomainRegistry([spec, spec])


@pytest.mark.parametrize("name", SEED_DOMAINS)
def test_schema_is_fully_enforceable(name):
    spec = REGISTRY.get(name)
    schema = spec.json_schema()
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        json.dumps(schema), defaults={"whitespace_flexible": False})
    assert llguidance.LLMatcher.validate_grammar(grammar) == ""
    dumped = json.dumps(schema)
    assert '"format"' not in dumped  # llguidance would not enforce uri/email formats
    assert spec.schema_hash == hashlib.sha256(
        json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:8]
    assert spec.prompt and spec.description and spec.inputs


def _walk(node, defs):
    if isinstance(node, dict):
        if "$ref" in node:
            yield from _walk(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
            return
        yield node
        for value in node.values():
            yield from _walk(value, defs)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, defs)


@pytest.mark.parametrize("name", SEED_DOMAINS)
def test_strings_lists_and_numbers_are_bounded(name):
    schema = REGISTRY.get(name).json_schema()
    for node in _walk(schema, schema.get("$defs", {})):
        kind = node.get("type")
        if kind == "string" and "enum" not in node:
            assert "maxLength" in node or "pattern" in node, node
        if kind == "array":
            assert "maxItems" in node, node
        if kind == "number":
            assert {"minimum", "maximum", "multipleOf"} <= set(node), node
        if kind == "object":
            assert node.get("additionalProperties") is False, node


def test_public_schema_facts():
    receipt = REGISTRY.get("document.receipt").schema
    assert {"items", "total", "currency", "payment_method"} <= set(receipt["required"])
    catalog = REGISTRY.get("retail.product-catalog").schema["properties"]
    assert catalog["season"]["enum"] == ["fall", "spring", "summer", "winter"]
    assert catalog["gender"]["enum"] == ["men", "women", "boys", "girls"]
    caption = REGISTRY.get("retail.ecommerce-product-caption").schema["properties"]
    assert (caption["rating"]["minimum"], caption["rating"]["maximum"]) == (0, 100)
    sensing = REGISTRY.get("aerospace.remote-sensing").schema
    assert "wind-farm" in sensing["$defs"]["RemoteSensingCategory"]["enum"]
    invoice = REGISTRY.get("document.invoice").schema["properties"]
    assert {"invoice_id", "items", "subtotal", "tax_amount", "total_amount", "currency",
            "payment_terms", "issuer_name", "customer_name"} <= set(invoice)
    resume = REGISTRY.get("document.resume").schema["required"]
    assert {"contact_info", "education", "work_experience", "technical_skills"} <= set(resume)
    news = REGISTRY.get("video.tv-news").schema["properties"]
    assert {"description", "chyron", "network", "reporters", "segments"} <= set(news)
    for name in ("video.caption", "video.commentary"):
        segment = REGISTRY.get(name).schema["properties"]["segments"]["items"]["$ref"]
        fields = REGISTRY.get(name).schema["$defs"][segment.rsplit("/", 1)[-1]]["properties"]
        assert {"start_time", "end_time", "description"} <= set(fields)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(DATE_PATTERN, fullmatch=True))
def test_every_string_the_date_pattern_admits_is_a_date(text):
    assert isinstance(date.fromisoformat(text), date)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(DATETIME_PATTERN, fullmatch=True))
def test_every_string_the_datetime_pattern_admits_is_a_datetime(text):
    assert isinstance(datetime.fromisoformat(text), datetime)


def test_gql_statement_follows_refs():
    gql = gql_statement(REGISTRY.get("document.receipt").schema)
    assert gql.startswith("{ receipt_id")
    assert "items { description quantity unit_price total_price }" in gql
    assert "payment_method { type card_last_4 card_type }" in gql


def test_adding_a_domain_is_one_entry():
    from vllm_mlx.domains.family_media import ImageCaption

    extra = DomainSpec(name="image.alt-text", model=ImageCaption, description="Alt text",
                       prompt="Write alt text.", inputs=("image",))
    registry = DomainRegistry([*REGISTRY, extra])
    assert registry.get("image.alt-text").schema_hash == extra.schema_hash
    assert "image.alt-text" in registry.names()
