"""Stop-string matching holds back partial matches and cuts at the first stop."""

from hypothesis import given
from hypothesis import strategies as st

from vllm_mlx.engine.sampling import StopMatcher


def run(stops, segments):
    matcher = StopMatcher(stops)
    out = []
    for segment in segments:
        text, stopped = matcher.feed(segment)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out) + matcher.flush(), False


def test_no_stops_passes_through():
    assert run([], ["a", "b"]) == ("ab", False)


def test_stop_split_across_segments_is_never_shown():
    matcher = StopMatcher(["END"])
    assert matcher.feed("hello E") == ("hello ", False)
    assert matcher.feed("N") == ("", False)
    assert matcher.feed("D and more") == ("", True)


def test_false_start_is_released():
    assert run(["END"], ["an E", "xit"]) == ("an Exit", False)


def test_earliest_of_several_stops_wins():
    assert run(["b", "cd"], ["xxcdxb"]) == ("xx", True)


@given(st.lists(st.text(alphabet="abc", max_size=4), max_size=8),
       st.text(alphabet="abc", min_size=1, max_size=3))
def test_output_is_text_before_first_stop(segments, stop):
    text, stopped = run([stop], segments)
    full = "".join(segments)
    index = full.find(stop)
    if index >= 0:
        assert stopped and text == full[:index]
    else:
        assert not stopped and text == full
