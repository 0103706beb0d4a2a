"""Retail and aerial imagery: ``retail.product-catalog``,
``retail.ecommerce-product-caption`` and ``aerospace.remote-sensing``.

Fields, enums and ranges follow the public vlmrun-hub schemas (season, gender and the remote
sensing categories are closed lists; rating is 0-100).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import Field

from .fields import Name, Paragraph, ShortText, Strict
from .spec import DomainSpec


class ProductCatalog(Strict):
    description: Paragraph = Field(
        ..., description="A 2-sentence visual description of the product in the image")
    category: ShortText = Field(
        ..., description="One or two-word category (apparel, accessories, footwear, ...)")
    season: Literal["fall", "spring", "summer", "winter"] = Field(
        ..., description="The season the product is intended for")
    gender: Literal["men", "women", "boys", "girls"] = Field(
        ..., description="Gender or audience the product is intended for")


class EcommerceProductCaption(Strict):
    description: Paragraph = Field(
        ..., description="A 2-sentence visual description of the product in the image")
    rating: int = Field(..., ge=0, le=100, description="Visual rating or appeal, 0 to 100")
    name: Name = Field(..., description="The name of the product")
    brand: Name = Field(..., description="The brand of the product")
    category: Name = Field(..., description="Category, e.g. 'Electronics / E-readers'")
    price: ShortText = Field(..., description="The price of the product")
    color: ShortText = Field(..., description="The color of the product")


class RemoteSensingCategory(str, Enum):
    airport = "airport"
    baseball_field = "baseball-field"
    beach = "beach"
    bridge = "bridge"
    cemetery = "cemetery"
    commercial_area = "commercial-area"
    dam = "dam"
    desert = "desert"
    factory = "factory"
    farmlands = "farmlands"
    forest = "forest"
    golf_course = "golf-course"
    greenhouse = "greenhouse"
    hospital = "hospital"
    industrial_area = "industrial-area"
    lake = "lake"
    landfill = "landfill"
    military_base = "military-base"
    mining_site = "mining-site"
    mountain = "mountain"
    oil_field = "oil-field"
    other = "other"
    park = "park"
    parking_lot = "parking-lot"
    port = "port"
    power_plant = "power-plant"
    quarry = "quarry"
    railway_station = "railway-station"
    residential_area = "residential-area"
    resort = "resort"
    river = "river"
    runway = "runway"
    school_campus = "school-campus"
    shopping_mall = "shopping-mall"
    solar_farm = "solar-farm"
    stadium = "stadium"
    storage_tanks = "storage-tanks"
    vineyard = "vineyard"
    water_treatment = "water-treatment"
    wetland = "wetland"
    wind_farm = "wind-farm"


class RemoteSensing(Strict):
    description: Paragraph | None = Field(
        None, description="2-3 sentence description of the satellite image")
    objects: Annotated[list[ShortText], Field(max_length=30)] | None = Field(
        None, description="List of unique objects in the scene")
    categories: Annotated[list[RemoteSensingCategory], Field(max_length=10)] | None = Field(
        None, description="Categories that pertain to the scene")
    is_visible: bool | None = Field(
        None, description="Whether the land mass is visible, or obscured by clouds")


DOMAINS = (
    DomainSpec(
        name="retail.product-catalog", model=ProductCatalog, inputs=("image",),
        description="Product catalog tagging: description, category, season and audience.",
        prompt="Describe the product in the image for a catalog: description, category, "
               "season and audience.", max_tokens=1024),
    DomainSpec(
        name="retail.ecommerce-product-caption", model=EcommerceProductCaption,
        inputs=("image",),
        description="E-commerce product caption: description, rating, name, brand, category, "
                    "price and color.",
        prompt="Caption the product in the image for an online store.", max_tokens=1024),
    DomainSpec(
        name="aerospace.remote-sensing", model=RemoteSensing, inputs=("image", "video"),
        description="Satellite and aerial imagery: description, objects, scene categories and "
                    "visibility.",
        prompt="Analyse the satellite or aerial image: describe it, list the objects and the "
               "scene categories, and say whether the land is visible.", max_tokens=1024),
)
