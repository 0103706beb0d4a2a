"""History plus files -> OpenAI messages: pure conversion, no model, no Gradio."""

from __future__ import annotations

import base64

import pytest

from vllm_mlx.content import MediaRef, TextRef, parse_messages
from vllm_mlx.ui.conversation import (
    Attachment,
    Conversation,
    Turn,
    UnsupportedAttachment,
    chatbot_messages,
    classify,
    from_json,
    once_part,
    path_part,
    to_json,
    to_openai_messages,
    turn_of_message,
    user_turn,
)

PNG_HEAD = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
MP4_HEAD = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 8


def image(path: str = "/m/a.png") -> Attachment:
    return Attachment(path, "image", path.rsplit("/", 1)[-1], "image/png")


def video(path: str = "/m/v.mp4") -> Attachment:
    return Attachment(path, "video", path.rsplit("/", 1)[-1], "video/mp4")


def test_classify_prefers_content_over_name():
    assert classify("upload.bin", PNG_HEAD) == ("image", "image/png")
    assert classify("clip.png", MP4_HEAD) == ("video", "video/mp4")
    assert classify("movie.webm") == ("video", "video/webm")
    assert classify("photo.JPG") == ("image", "image/jpeg")


@pytest.mark.parametrize("name", ["notes.txt", "song.mp3", "noext"])
def test_classify_refuses_other_files(name):
    with pytest.raises(UnsupportedAttachment, match=name):
        classify(name, b"plain text")


def test_user_turn_reads_files(ui_media):
    turn = user_turn("  what is this?  ", [ui_media / "photo.png", ui_media / "clip.mp4"])
    assert turn.role == "user" and turn.text == "what is this?"
    assert [(a.kind, a.name) for a in turn.attachments] == [("image", "photo.png"),
                                                              ("video", "clip.mp4")]
    with pytest.raises(UnsupportedAttachment):
        user_turn("x", [ui_media / "notes.txt"])


def test_several_media_per_message_then_text():
    conv = Conversation().add(Turn("user", "compare", (image("/m/a.png"), image("/m/b.png"),
                                                       video())))
    assert to_openai_messages(conv) == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "/m/a.png"}},
        {"type": "image_url", "image_url": {"url": "/m/b.png"}},
        {"type": "video", "video": "/m/v.mp4"},
        {"type": "text", "text": "compare"},
    ]}]


def test_history_system_prompt_and_plain_text_turns():
    conv = (Conversation().add(Turn("user", "hi")).with_reply("hello")
            .add(Turn("user", "", (image(),))))
    messages = to_openai_messages(conv, system_prompt="  be brief ")
    assert messages[:3] == [{"role": "system", "content": "be brief"},
                            {"role": "user", "content": "hi"},
                            {"role": "assistant", "content": "hello"}]
    # a media-only message has no text part
    assert messages[3] == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "/m/a.png"}}]}


def test_empty_assistant_turns_are_left_out():
    conv = Conversation().add(Turn("user", "hi")).with_reply("")
    assert to_openai_messages(conv) == [{"role": "user", "content": "hi"}]
    assert chatbot_messages(conv) == [{"role": "user", "content": "hi"}]


def test_with_reply_replaces_the_trailing_reply():
    conv = Conversation().add(Turn("user", "hi")).with_reply("he").with_reply("hello")
    assert [t.text for t in conv.turns] == ["hi", "hello"]
    assert conv.with_reply("x").turns[:-1] == conv.turns[:-1]


def test_paths_are_referenced_in_every_turn():
    conv = (Conversation().add(Turn("user", "one", (image(),))).with_reply("r")
            .add(Turn("user", "two", (video(),))))
    messages = to_openai_messages(conv, path_part)
    assert messages[0]["content"][0] == {"type": "image_url", "image_url": {"url": "/m/a.png"}}
    assert messages[2]["content"][0] == {"type": "video", "video": "/m/v.mp4"}


def test_data_urls_only_in_the_turn_that_attached_them(ui_media):
    first = user_turn("look", [ui_media / "photo.png"])
    second = user_turn("and this", [ui_media / "clip.mp4"])
    conv = Conversation().add(first).with_reply("ok").add(second)
    messages = to_openai_messages(conv, once_part)
    assert messages[0]["content"][0] == {"type": "text",
                                         "text": "[image 'photo.png' attached earlier]"}
    url = messages[2]["content"][0]["video_url"]["url"]
    assert url.startswith("data:video/mp4;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == (ui_media / "clip.mp4").read_bytes()
    # the previous turn, when it was the newest, carried the image itself
    image_url = to_openai_messages(Conversation().add(first), once_part)[0]["content"][0]
    assert image_url["image_url"]["url"].startswith("data:image/png;base64,")


def test_output_is_what_the_server_parses():
    conv = (Conversation().add(Turn("user", "a", (image(), video()))).with_reply("b")
            .add(Turn("user", "c")))
    parsed = parse_messages(to_openai_messages(conv, system_prompt="s"))
    assert [m.role for m in parsed] == ["system", "user", "assistant", "user"]
    assert parsed[1].parts == (MediaRef("image", "/m/a.png"), MediaRef("video", "/m/v.mp4"),
                               TextRef("a"))


def test_chatbot_shows_files_then_text():
    conv = Conversation().add(Turn("user", "see", (image(), video()))).with_reply("seen")
    shown = chatbot_messages(conv)
    assert [m["role"] for m in shown] == ["user", "user", "user", "user", "assistant"]
    assert shown[0]["content"] == {"path": "/m/a.png", "mime_type": "image/png",
                                   "orig_name": "a.png"}
    assert "v.mp4" in shown[2]["content"]  # a video is named under its player
    assert shown[3:] == [{"role": "user", "content": "see"},
                         {"role": "assistant", "content": "seen"}]


def test_a_turn_stopped_before_its_reply_is_not_sent_again():
    conv = (Conversation().add(Turn("user", "slow")).with_reply("", "stopped")
            .add(Turn("user", "next")))
    assert to_openai_messages(conv) == [{"role": "user", "content": "next"}]
    assert [m["role"] for m in chatbot_messages(conv)] == ["user", "assistant", "user"]


def test_notes_notices_and_message_indexes():
    conv = (Conversation().add(Turn("user", "see", (image(),))).with_reply("ok", "3 tokens")
            .with_notice("refused"))
    shown = chatbot_messages(conv)
    assert shown[2]["content"] == "ok" and "3 tokens" in shown[3]["content"]
    assert "refused" in shown[-1]["content"] and to_openai_messages(conv)[-1]["content"] == "ok"
    assert [turn_of_message(conv, i) for i in range(5)] == [0, 0, 1, 1, -1]
    edited = conv.edited(0, " look ")
    assert [t.text for t in edited.turns] == ["look"] and edited.turns[0].attachments
    assert conv.without_last_reply().turns == conv.turns[:1]
    with pytest.raises(ValueError):
        conv.edited(1, "x")


def test_stored_history_round_trips_and_trusts_no_path(ui_media, tmp_path):
    conv = (Conversation().add(user_turn("see", [ui_media / "photo.png"]))
            .with_reply("ok", "2 tokens"))
    assert from_json(to_json(conv), ui_media) == conv
    outside = to_json(conv)
    outside["turns"][0]["attachments"][0]["path"] = "/etc/passwd"
    restored = from_json(outside, ui_media)
    assert restored.turns[0].attachments == () and "photo.png" in restored.notice
    assert from_json(to_json(conv), tmp_path).turns[0].attachments == ()  # not under root
    assert from_json({"turns": [{"role": "system"}]}, ui_media) == Conversation()
    assert from_json("garbage", ui_media) == Conversation()
