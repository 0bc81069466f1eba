"""`POST /v1/attack`: one uploaded image -> its adversarial version and what the model answers on it.

The image goes through the same limits as `/v1/predict` (and the heavy routes' pixel
cap), brought to the model's size first.  With no ground truth, the
model's own answer stands in for it (the robust facet's `as_target`): PGD or FGSM push the image
away from that answer on the task's own loss, `vanish` lowers every detection's score
(`recog.robust.run.attack_image`).  The attack runs in a worker thread under the app's
gate of heavy work (`recog.serve.worker`: 503 when busy, 504 past the time-out, the
work then cancelled) on the explanation copy of the model, one request at a time per
model (`explain_lock`), so its gradients never reach the micro-batcher's forward passes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from recog.api.facet import OUTPUT
from recog.errors import RecogError
from recog.serve.errors import ApiError
from recog.serve.routes.heavy import HEAVY_ROUTE, model_query, on_explaining_copy, png_url
from recog.serve.schemas import AttackResponse
from recog.serve.state import ServingDep

#: recog.robust.run.IMAGE_ATTACKS, written out so the schema needs no import of torch code
ATTACKS = ("pgd", "fgsm", "vanish")
MAX_STEPS = 50

router = APIRouter(tags=["attack"])


def _png(image: Any) -> str:
    from PIL import Image

    return png_url(Image.fromarray(image.permute(1, 2, 0).cpu().numpy()))


@router.post("/v1/attack", response_model=AttackResponse, **HEAVY_ROUTE)
async def attack(
    request: Request,
    state: ServingDep,
    model: str | None = model_query(),
    attack: str = Query("pgd", description=f"one of {', '.join(ATTACKS)}"),
    eps: str = Query(
        "8/255", max_length=32, description="L-inf radius in [0, 1] pixels, e.g. 8/255"
    ),
    steps: int = Query(10, ge=1, le=MAX_STEPS, description="PGD steps"),
) -> dict[str, Any]:
    """The adversarial version of one image and the model's answers before and after."""
    from recog.config import parse_eps

    radius = 0.0

    def check() -> None:
        nonlocal radius
        if attack not in ATTACKS:
            raise ApiError(422, "bad_attack", f"attack {attack!r}: not one of {', '.join(ATTACKS)}")
        try:
            radius = parse_eps(eps, flag="eps")
        except RecogError as exc:
            raise ApiError(422, "bad_eps", str(exc)) from None

    def job(rec: Any, image: Any) -> dict[str, Any]:
        import torch

        from recog.robust.run import attack_image

        task = rec.task
        result = attack_image(task, rec.model, image, attack=attack, eps=radius,
                              steps=steps, device=rec.device)  # fmt: skip
        before, after = task.to_record(result.clean), task.to_record(result.attacked)
        delta = result.adversarial.float() - result.image.float()
        magnified = ((delta / (2 * radius * 255) + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        return {
            "eps": radius,
            "clean": before,
            "adversarial": after,
            "clean_image": _png(task.draw(result.image, result.clean)),
            "adversarial_image": _png(task.draw(result.adversarial, result.attacked)),
            "perturbation": _png(magnified),
            "changed": OUTPUT.of(task).summary(before) != OUTPUT.of(task).summary(after),
        }

    return await on_explaining_copy(
        request, state, model, job, what="attack", check=check, attack=attack
    )
