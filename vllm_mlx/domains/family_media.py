"""Images and video: ``image.caption``, ``video.caption``, ``video.commentary``,
``video.tv-news`` (aliases ``media.tv-news``, ``image.tv-news``).

Captions are a caption plus tags. Video domains are lists of segments with start and end
times in seconds; the prompt tells the model at which times the frames it sees were taken.
``video.tv-news`` follows the public vlmrun-hub ``TVNews`` schema (description, chyron,
network, reporters) and adds per-segment entries for video input.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .fields import Line, Name, Paragraph, Seconds, Strict, Tags
from .spec import DomainSpec


class ImageCaption(Strict):
    caption: Paragraph = Field(..., description="A detailed caption of the image")
    tags: Tags = Field(..., description="Short tags for the objects and themes shown")


class CaptionSegment(Strict):
    start_time: Seconds = Field(..., description="Start of the segment in seconds")
    end_time: Seconds = Field(..., description="End of the segment in seconds")
    description: Paragraph = Field(..., description="What happens in this segment")


class VideoCaption(Strict):
    summary: Paragraph = Field(..., description="A caption of the whole video")
    segments: Annotated[list[CaptionSegment], Field(max_length=64)] = Field(
        ..., description="Consecutive segments of the video, in order")
    tags: Tags | None = Field(None, description="Short tags for the video")


class CommentarySegment(Strict):
    start_time: Seconds = Field(..., description="Start of the segment in seconds")
    end_time: Seconds = Field(..., description="End of the segment in seconds")
    description: Paragraph = Field(..., description="What happens in this segment")
    commentary: Paragraph = Field(..., description="Commentary a narrator would speak")


class VideoCommentary(Strict):
    summary: Paragraph | None = Field(None, description="An overview of the video")
    segments: Annotated[list[CommentarySegment], Field(max_length=64)] = Field(
        ..., description="Consecutive segments with commentary, in order")


class NewsSegment(Strict):
    start_time: Seconds = Field(..., description="Start of the segment in seconds")
    end_time: Seconds = Field(..., description="End of the segment in seconds")
    description: Paragraph = Field(..., description="What is shown in this segment")
    chyron: Line | None = Field(None, description="Lower-third text shown in this segment")


class TVNews(Strict):
    description: Paragraph | None = Field(
        None, description="Description of the scene contents and visual elements")
    chyron: Line | None = Field(
        None, description="Text displayed in the lower third of the screen (news ticker)")
    network: Name | None = Field(None, description="Name of the news network")
    reporters: Annotated[list[Name], Field(max_length=10)] | None = Field(
        None, description="Names of reporters appearing in the broadcast")
    segments: Annotated[list[NewsSegment], Field(max_length=64)] | None = Field(
        None, description="For videos: consecutive segments, in order (null for an image)")


DOMAINS = (
    DomainSpec(
        name="image.caption", model=ImageCaption, inputs=("image",),
        description="Image captioning: a detailed caption and tags.",
        prompt="Write a detailed caption of the image and a few short tags.", max_tokens=1024),
    DomainSpec(
        name="video.caption", model=VideoCaption, inputs=("video",),
        description="Video captioning: a summary and time-stamped segment descriptions.",
        prompt="Caption the video: a summary, then consecutive segments with their start and "
               "end times in seconds and what happens in each.", max_tokens=4096),
    DomainSpec(
        name="video.commentary", model=VideoCommentary, inputs=("video",),
        description="Video commentary: time-stamped segments with narration.",
        prompt="Write commentary for the video: consecutive segments with start and end times "
               "in seconds, what happens, and what a narrator would say.", max_tokens=4096),
    DomainSpec(
        name="video.tv-news", model=TVNews, inputs=("image", "video"),
        aliases=("media.tv-news", "image.tv-news"),
        description="TV news: scene description, chyron, network and reporters.",
        prompt="Describe the news broadcast: the scene, the chyron text, the network and the "
               "reporters; for a video also list time-stamped segments.", max_tokens=4096),
)
