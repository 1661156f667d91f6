"""The API's routers, and the error answers each route documents (its `responses=`), all in one place: every status
a route really answers with, with its body (`ErrorBody`, or `ValidationErrorBody` for 422) and headers."""

from ..schemas import DeviceAnswerOut, FeedbackOut, error_responses

STARTING = "the service is starting: models are not loaded yet"
MODELS = error_responses(401, 403, 503, e503=STARTING)
PREDICT = error_responses(
    400,
    401,
    403,
    413,
    415,
    422,
    429,
    503,
    e400="empty upload, unknown `X-Model-Variant`, or a body that cannot be parsed",
    e413="upload over the size limit (PD_MAX_UPLOAD_BYTES), or an image over the pixel limit (PD_MAX_PIXELS)",
    e415="not a JPEG, PNG or WebP image",
    e422="a bad parameter (a list of issues), or a corrupt or unreadable image (in words)",
    e503=STARTING,
)
PREDICT_BATCH = error_responses(
    400,
    401,
    403,
    413,
    422,
    429,
    503,
    e400="unknown `X-Model-Variant`, or a body that cannot be parsed",
    e413="more bytes in all than PD_MAX_UPLOAD_BYTES",
    e422="a bad parameter, no files, or more than PD_MAX_BATCH (a bad image fails alone: its item says why)",
    e503=STARTING,
)
PREDICT_ASYNC = {
    **PREDICT,
    **error_responses(
        503, e503="the service is starting, or the queue is unavailable (or not configured: PD_REDIS_URL)"
    ),
}
RESULT = error_responses(
    401,
    403,
    404,
    422,
    503,
    e404="no such task for this caller (unknown, expired or someone else's)",
    e503="the service is starting, or the result store is unavailable (or not configured: PD_REDIS_URL)",
)
STATS = error_responses(
    401, 403, 422, 503, e503="the service is starting, or the prediction-log database is unavailable"
)
FEEDBACK = {
    **error_responses(
        400,
        401,
        403,
        404,
        409,
        422,
        429,
        503,
        e400="a verdict that does not fit its answer: a correction without `label` or to a class the model does not "
        "have, a label with `not_a_leaf`/`unsure`, or a batch's request id without `image_sha256`",
        e404="no answer with this request id (and photo) in the prediction log, or the upload was refused",
        e409="the `Idempotency-Key` was used for another verdict",
        e422="a bad field: unknown verdict, a malformed SHA-256, a note over 2000 characters (a list of issues)",
        e503=STARTING,
    ),
    200: {"model": FeedbackOut, "description": "this `Idempotency-Key` was recorded before: nothing new written"},
    202: {
        "model": FeedbackOut,
        "description": "kept unchecked: the prediction log could not be read (database down); written when it returns",
    },
}
DEVICE_ANSWER = {
    **error_responses(
        400,
        401,
        403,
        409,
        413,
        415,
        422,
        429,
        503,
        e400="empty upload, or a body that cannot be parsed",
        e409="a model version this service no longer has (not served, not in the registry, no answers in the log): "
        "the page keeps the answer; or the `Idempotency-Key` was used for another photo",
        e413="upload over the size limit (PD_MAX_UPLOAD_BYTES), or an image over the pixel limit (PD_MAX_PIXELS)",
        e415="not a JPEG, PNG or WebP image",
        e422="a bad field of the answer or a missing or malformed `Idempotency-Key` (a list of issues), an answer the "
        "model could not give, or an unreadable image (in words)",
        e503=STARTING,
    ),
    200: {"model": DeviceAnswerOut, "description": "this `Idempotency-Key` was recorded before: nothing new written"},
}
FEEDBACK_STATS = error_responses(
    401, 403, 422, 503, e503="the service is starting, or the prediction-log database is unavailable"
)
TOKENS = error_responses(
    400,
    401,
    403,
    409,
    413,
    422,
    e400="the body cannot be parsed as JSON",
    e409="this service verifies RS256 tokens and holds no private key: sign tokens offline (python -m app.tokens)",
)
WEB_MODEL = {
    **error_responses(
        401,
        403,
        404,
        422,
        503,
        e404="no such variant, or it has no LiteRT export the browser can run (`plant-disease export`)",
        e503=STARTING,
    ),
    304: {"description": "the page's copy is current (`If-None-Match` named this hash)"},
}
WEB_MODEL_FILE = {
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "the file's bytes (the LiteRT model, or the feature bank as little-endian float16 rows)",
    },
    **error_responses(
        401,
        403,
        404,
        422,
        503,
        e404="no such file, or a hash the variant no longer serves (production moved: fetch its `/web` again)",
        e503=STARTING,
    ),
}
