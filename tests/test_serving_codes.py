"""One upload check, two readers: every problem code has an HTTP status (the service) and a sentence (the dashboard),
decided by the code, never by the wording of the check's reason. No service needed."""

import io

import pytest
from PIL import Image

from app.predicting import STATUS, upload_error, validate_upload
from plant_disease.dashboard.words import SENTENCES, DiagnosisError, check_upload
from testkit.images import solid_image
from plant_disease.images import ImageProblem
from plant_disease.serving import UploadProblem


def cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("CMYK", (16, 16)).save(buf, "JPEG")
    return buf.getvalue()


JPG = solid_image((40, 150, 60), (96, 80))
CASES = [  # bytes, limits, code, status, the start of the service's detail
    (b"", {}, "empty", 400, "empty upload"),
    (JPG, {"max_bytes": 100}, "too_large", 413, "upload of"),
    (JPG, {"max_pixels": 1000}, "too_many_pixels", 413, "image too large"),
    (b"<html>hello</html>", {}, "not_an_image", 415, "not a JPEG, PNG or WebP image"),
    (solid_image(fmt="GIF"), {}, "unsupported_format", 415, "not a JPEG, PNG or WebP image"),
    (JPG[: len(JPG) // 2], {}, "truncated", 422, "corrupt or unreadable image: truncated"),
    (solid_image(size=(4, 4)), {}, "too_small", 422, "image too small"),
    (cmyk_jpeg(), {}, "colour_mode", 422, "unsupported image"),
]


def test_every_code_has_a_status_and_a_sentence():
    assert set(STATUS) == set(ImageProblem) == set(SENTENCES)


@pytest.mark.parametrize("data, limits, code, status, detail", CASES, ids=[c[2] for c in CASES])
def test_service_and_dashboard_read_the_same_code(data, limits, code, status, detail):
    limits = {"max_bytes": 10**6, "max_pixels": 10**6, **limits}
    with pytest.raises(Exception) as service:
        validate_upload(data, **limits)
    assert (service.value.code, service.value.status) == (code, status)
    assert service.value.detail.startswith(detail), service.value.detail
    with pytest.raises(DiagnosisError) as dashboard:
        check_upload(data, **limits)
    assert dashboard.value.code == code and str(dashboard.value) == SENTENCES[code].format(
        pixels=" of at most 0 megapixels", size_mb=len(data) / 2**20, limit_mb=100 / 2**20
    ), str(dashboard.value)


def test_a_reworded_reason_changes_no_status():
    "The status follows the code: the same code with any wording gives the same answer."
    assert upload_error(UploadProblem("unsupported_format", "anything at all")).status == 415
    assert upload_error(UploadProblem("truncated", "unsupported format, cannot identify image file")).status == 422
