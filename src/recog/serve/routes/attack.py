"""`POST /v1/attack`: one uploaded image -> its adversarial version and what the model answers on it.

The image goes through the same limits as `/v1/predict` (and the heavy routes' pixel
cap), brought to the model's size first.  With no ground truth, the
model's own answer stands in for it (`Task.as_target`): PGD or FGSM push the image
away from that answer on the task's own loss, `vanish` lowers every detection's score
(`recog.robust.run.attack_image`).  The attack runs in a worker thread under the app's
gate of heavy work (`recog.serve.worker`: 503 when busy, 504 past the time-out, the
work then cancelled) on the explanation copy of the model, one request at a time per
model (`explain_lock`), so its gradients never reach the micro-batcher's forward passes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from typing import Any

from fastapi import APIRouter, Query, Request

from recog.api.facet import OUTPUT
from recog.errors import RecogError
from recog.serve.errors import ApiError, error_responses
from recog.serve.routes.predict import PREDICT_BODY
from recog.serve.schemas import AttackResponse
from recog.serve.state import ServingDep
from recog.serve.upload import read_upload
from recog.serve.worker import cancellable, heavy_image, in_worker

#: recog.robust.run.IMAGE_ATTACKS, written out so the schema needs no import of torch code
ATTACKS = ("pgd", "fgsm", "vanish")
MAX_STEPS = 50

router = APIRouter(tags=["attack"])


def _png(image: Any) -> str:
    from PIL import Image

    array = image.permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@router.post(
    "/v1/attack",
    response_model=AttackResponse,
    openapi_extra={"requestBody": PREDICT_BODY},
    responses=error_responses(400, 401, 404, 408, 413, 415, 422, 503, 504),
)
async def attack(
    request: Request,
    state: ServingDep,
    model: str | None = Query(
        None, max_length=200, description="model name (default: the first served)"
    ),
    attack: str = Query("pgd", description=f"one of {', '.join(ATTACKS)}"),
    eps: str = Query(
        "8/255", max_length=32, description="L-inf radius in [0, 1] pixels, e.g. 8/255"
    ),
    steps: int = Query(10, ge=1, le=MAX_STEPS, description="PGD steps"),
) -> dict[str, Any]:
    """The adversarial version of one image and the model's answers before and after."""
    from recog.config import parse_eps

    start = time.perf_counter()
    limits = state.config.limits
    name, served = state.served(model)
    if attack not in ATTACKS:
        raise ApiError(422, "bad_attack", f"attack {attack!r}: not one of {', '.join(ATTACKS)}")
    try:
        radius = parse_eps(eps, flag="eps")
    except RecogError as exc:
        raise ApiError(422, "bad_eps", str(exc)) from None
    data = await read_upload(request, limits)

    def work(cancel: threading.Event) -> tuple[tuple[int, int], dict[str, Any]]:
        import torch

        from recog.robust.run import attack_image

        image, size = heavy_image(data, limits, served.recognizer)
        with served.explain_lock:
            rec = served.explaining()
            task = rec.task
            with cancellable(rec.model, cancel):
                result = attack_image(task, rec.model, image, attack=attack, eps=radius,
                                      steps=steps, device=rec.device)  # fmt: skip
        before, after = task.to_record(result.clean), task.to_record(result.attacked)
        delta = result.adversarial.float() - result.image.float()
        magnified = ((delta / (2 * radius * 255) + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        return size, {
            "clean": before,
            "adversarial": after,
            "clean_image": _png(task.draw(result.image, result.clean)),
            "adversarial_image": _png(task.draw(result.adversarial, result.attacked)),
            "perturbation": _png(magnified),
            "changed": OUTPUT.of(task).summary(before) != OUTPUT.of(task).summary(after),
        }

    (width, height), body = await in_worker(state.heavy, work, limits.predict_timeout_s, "attack")
    return {
        "model": name,
        "task": str(served.recognizer.config.task),
        "attack": attack,
        "eps": radius,
        "image": {
            "sha256": hashlib.sha256(data).hexdigest(),
            "width": width,
            "height": height,
        },
        **body,
        "latency_ms": round((time.perf_counter() - start) * 1000.0, 3),
    }
