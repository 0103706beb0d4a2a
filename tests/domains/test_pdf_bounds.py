"""PDF rendering has a time and memory budget, its own bounded pool and cancellation: a
few-KB PDF of nested XObjects (x10 render time a level) is refused within the budget while
/health, images and other PDFs are served."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import data_url
from tests.domains.conftest import pdf_bytes
from tests.live_server import serving
from vllm_mlx.config import Settings
from vllm_mlx.domains.pdf import PdfError, PdfLimits, PdfRenderer

TIMEOUT_S = 2.0


def nested_xobject_pdf(levels: int, fanout: int = 10) -> bytes:
    """One page drawing form XObject 1, which draws XObject 2 ``fanout`` times, ... down
    to ``levels``: ``fanout ** levels`` rectangles from a file of about 2 KB."""
    first = 4
    objects = [(1, b"<< /Type /Catalog /Pages 2 0 R >>"),
               (2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"),
               (3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                   b"/Resources << /XObject << /X %d 0 R >> >> >>" % (first + levels, first))]
    for level in range(levels):
        if level == levels - 1:
            content, resources = b"0 0 1 rg 0 0 10 10 re f", b""
        else:
            content = b" ".join(b"q 1 0 0 1 %d %d cm /X Do Q" % (i, i) for i in range(fanout))
            resources = b"/Resources << /XObject << /X %d 0 R >> >>" % (first + level + 1)
        objects.append((first + level, b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] "
                        b"%s /Length %d >>\nstream\n%s\nendstream" % (resources, len(content),
                                                                     content)))
    page = b"q /X Do Q"
    objects.append((first + levels, b"<< /Length %d >>\nstream\n%s\nendstream"
                    % (len(page), page)))
    out, offsets = bytearray(b"%PDF-1.7\n"), {}
    for number, body in objects:
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref, count = len(out), len(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % count
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, count))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, xref)
    return bytes(out)


def renderer(**limits) -> PdfRenderer:
    return PdfRenderer(PdfLimits(**{"timeout_s": TIMEOUT_S, **limits}))


async def test_a_shallow_nested_pdf_renders():
    pages = await renderer().render(nested_xobject_pdf(3), dpi=72)
    assert [p.size for p in pages] == [(612, 792)] and pages[0].mode == "RGB"


async def test_a_deep_nested_pdf_is_killed_at_the_time_budget():
    data = nested_xobject_pdf(9)  # would render for hours
    assert len(data) < 4096
    start = time.monotonic()
    with pytest.raises(PdfError) as caught:
        await renderer(memory_bytes=8 << 30).render(data)
    elapsed = time.monotonic() - start
    assert caught.value.status in (413, 422) and elapsed < TIMEOUT_S + 2, elapsed
    if caught.value.status == 422:
        assert caught.value.code == "pdf_render_timeout" and "2 s" in str(caught.value)


async def test_a_render_over_the_memory_budget_is_a_413():
    with pytest.raises(PdfError) as caught:
        await renderer(memory_bytes=4 << 20, max_side=8000).render(nested_xobject_pdf(2),
                                                                   dpi=600)
    assert caught.value.status == 413 and caught.value.code == "pdf_render_memory"
    assert "4 MiB" in str(caught.value)


async def test_a_cancelled_render_kills_its_child():
    pdf = renderer(timeout_s=60)
    task = asyncio.create_task(pdf.render(nested_xobject_pdf(9)))
    await asyncio.sleep(1.0)
    assert len(pdf._children) == 1
    child = next(iter(pdf._children))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(40):
        if child.poll() is not None:
            break
        await asyncio.sleep(0.05)
    assert child.poll() is not None and not pdf._children


async def test_the_queue_is_bounded():
    pdf = renderer(workers=1, max_waiting=1, timeout_s=30)
    tasks = [asyncio.create_task(pdf.render(nested_xobject_pdf(9))) for _ in range(2)]
    await asyncio.sleep(0.2)
    with pytest.raises(PdfError) as caught:
        await pdf.render(nested_xobject_pdf(3))
    assert caught.value.status == 429 and caught.value.code == "pdf_renderer_busy"
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    pdf.close()


@pytest.fixture(scope="module")
def base_url(engine_for, tmp_path_factory) -> Iterator[str]:
    from vllm_mlx.api.app import create_app

    settings = Settings(model="tiny:qwen2_vl", pdf_timeout_s=TIMEOUT_S,
                        storage_path=tmp_path_factory.mktemp("pdf-store"))
    with serving(create_app(settings, engine_for("qwen2_vl"))) as port:
        yield f"http://127.0.0.1:{port}"


def predict(base_url: str, pdf: bytes) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = httpx.post(f"{base_url}/v1/document/generate", timeout=120, json={
        "domain": "document.invoice", "url": data_url(pdf, "application/pdf"),
        "config": {"max_tokens": 4}})
    return response, time.monotonic() - start


def test_hostile_pdfs_get_a_4xx_while_others_are_served(base_url):
    answers: list[tuple[httpx.Response, float]] = []
    threads = [threading.Thread(target=lambda: answers.append(
        predict(base_url, nested_xobject_pdf(9)))) for _ in range(4)]
    for thread in threads:
        thread.start()
    latencies = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for _ in range(200):  # bounded: the hostile PDFs end within 2 budgets
            if not any(t.is_alive() for t in threads):
                break
            start = time.monotonic()
            assert client.get("/health").status_code == 200
            latencies.append(time.monotonic() - start)
            time.sleep(0.05)
    for thread in threads:
        thread.join(60)
    assert len(answers) == 4
    for response, elapsed in answers:
        assert response.status_code in (413, 422, 429), response.text[:300]
        assert elapsed < 3 * TIMEOUT_S + 5, elapsed
        error = response.json()["error"]
        assert error["param"] == "url" and error["code"].startswith("pdf_")
    assert max(latencies) < 1.0, max(latencies)
    print(f"{len(answers)} hostile PDFs answered in at most {max(e for _, e in answers):.2f} s "
          f"({sorted(r.status_code for r, _ in answers)}); /health at most "
          f"{max(latencies):.3f} s over {len(latencies)} probes")
    response, _ = predict(base_url, pdf_bytes(2))
    assert response.status_code == 201, response.text[:300]
    assert response.json()["usage"]["elements_processed"] == 2
