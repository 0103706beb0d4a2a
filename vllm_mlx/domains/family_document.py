"""General documents: ``document.resume``, ``document.ocr``, ``document.markdown``,
``document.generative`` and ``document.presentation``.

``document.resume`` follows the public vlmrun-hub schema (contact info, education, work
experience, technical skills; URLs as bounded strings, not ``format: uri``, which decoding
could not enforce). ``document.markdown`` has the shape the ``vlmrun`` SDK casts to its
``MarkdownDocument`` (``pages[].content``). Long text is split into bounded lists (lines,
blocks, slides) rather than one unbounded string.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .fields import Count, IsoDate, Line, Long, Name, Paragraph, Score, ShortText, Strict, Tags
from .spec import DomainSpec

Url = Annotated[str, Field(max_length=200)]
ShortList = Annotated[list[Line], Field(max_length=20)]


class ContactInfo(Strict):
    full_name: Name = Field(..., description="Full name of the individual")
    email: Name | None = Field(None, description="Email address")
    phone: ShortText | None = Field(None, description="Phone number")
    address: Line | None = Field(None, description="Physical address")
    linkedin: Url | None = Field(None, description="LinkedIn profile URL")
    github: Url | None = Field(None, description="GitHub profile URL")
    portfolio: Url | None = Field(None, description="Portfolio website URL")


class Education(Strict):
    institution: Name | None = Field(None, description="Name of the institution")
    degree: Name | None = Field(None, description="Degree obtained or pursued")
    field_of_study: Name | None = Field(None, description="Field of study or major")
    graduation_date: IsoDate | None = Field(None, description="Date of graduation")
    gpa: Score | None = Field(None, description="Grade point average")


class WorkExperience(Strict):
    company: Name | None = Field(None, description="Name of the company")
    position: Name | None = Field(None, description="Job title or position held")
    start_date: IsoDate | None = Field(None, description="Start date of employment")
    end_date: IsoDate | None = Field(None, description="End date of employment")
    is_current: bool = Field(False, description="Whether this is the current job")
    responsibilities: ShortList = Field(..., description="Key responsibilities")
    technologies: Tags | None = Field(None, description="Technologies or tools used")


class Skill(Strict):
    name: ShortText = Field(..., description="Name of the skill")
    level: ShortText | None = Field(None, description="Proficiency, e.g. 'Expert'")
    years_of_experience: Score | None = Field(
        None, description="Years of experience with this skill")


SkillList = Annotated[list[Skill], Field(max_length=30)]


class TechnicalSkills(Strict):
    programming_languages: SkillList = Field(..., description="Programming languages")
    frameworks_libraries: SkillList = Field(..., description="Frameworks and libraries")
    databases: SkillList | None = Field(None, description="Database technologies")
    tools: SkillList | None = Field(None, description="Development tools")
    cloud_platforms: SkillList | None = Field(None, description="Cloud platforms")


class Resume(Strict):
    contact_info: ContactInfo = Field(..., description="Contact information")
    summary: Paragraph | None = Field(None, description="Professional summary")
    education: Annotated[list[Education], Field(max_length=10)] = Field(
        ..., description="Educational background")
    work_experience: Annotated[list[WorkExperience], Field(max_length=20)] = Field(
        ..., description="Work experience")
    technical_skills: TechnicalSkills = Field(..., description="Technical skills")
    certifications: ShortList | None = Field(None, description="Certifications")
    languages: SkillList | None = Field(None, description="Natural languages known")


class OcrPage(Strict):
    lines: Annotated[list[Line], Field(max_length=200)] = Field(
        ..., description="The page's text, line by line, in reading order")


class Ocr(Strict):
    pages: Annotated[list[OcrPage], Field(max_length=64)] = Field(
        ..., description="One entry per page or image, in order")


class MarkdownPage(Strict):
    content: Long = Field(..., description="The page as Markdown (headings, lists, tables)")


class MarkdownDocument(Strict):
    pages: Annotated[list[MarkdownPage], Field(max_length=64)] = Field(
        ..., description="One entry per page or image, in order")


class Block(Strict):
    type: Literal["title", "heading", "paragraph", "list", "table", "figure", "other"] = Field(
        ..., description="Kind of block")
    text: Paragraph = Field(..., description="Text of the block")


class GenerativeDocument(Strict):
    title: Line | None = Field(None, description="Title of the document")
    document_type: ShortText | None = Field(None, description="Kind of document")
    summary: Paragraph = Field(..., description="A short summary of the document")
    blocks: Annotated[list[Block], Field(max_length=100)] = Field(
        ..., description="Content blocks in reading order")


class Slide(Strict):
    slide_number: Annotated[int, Field(ge=1, le=1000)] = Field(..., description="Slide number")
    title: Line | None = Field(None, description="Slide title")
    bullets: ShortList = Field(..., description="Bullet points or body text")
    notes: Paragraph | None = Field(None, description="Speaker notes or visual description")


class Presentation(Strict):
    title: Line | None = Field(None, description="Title of the presentation")
    slides: Annotated[list[Slide], Field(max_length=100)] = Field(
        ..., description="One entry per slide, in order")
    slide_count: Count | None = Field(None, description="Number of slides shown")


DOMAINS = (
    DomainSpec(
        name="document.resume", model=Resume,
        description="Resume extraction: contact info, education, work experience and skills.",
        prompt="Extract the resume shown in the image(s) into the JSON fields. Use null for "
               "anything that is not shown.", max_tokens=4096),
    DomainSpec(
        name="document.ocr", model=Ocr,
        description="Optical character recognition: the text of each page, line by line.",
        prompt="Transcribe all text of each page or image, line by line in reading order.",
        max_tokens=8192),
    DomainSpec(
        name="document.markdown", model=MarkdownDocument,
        description="Document to Markdown: each page rendered as Markdown.",
        prompt="Convert each page or image to Markdown, keeping headings, lists and tables.",
        max_tokens=8192),
    DomainSpec(
        name="document.generative", model=GenerativeDocument,
        description="Generic document understanding: title, type, summary and content blocks.",
        prompt="Read the document and describe its structure: title, type, a short summary and "
               "its content blocks in reading order.", max_tokens=4096),
    DomainSpec(
        name="document.presentation", model=Presentation,
        description="Slide decks: the title, bullets and notes of every slide.",
        prompt="Extract every slide shown: its number, title, bullet points and notes.",
        max_tokens=4096),
)
