"""What a model says about a dataset's images: out-of-fold class probabilities, predictions, embeddings.

Out-of-fold probabilities (classification's label check, cleanlab's input):
- with `--run` of a classifier: the run's penultimate features of every image
  (`recog.confidence.features`), then a logistic regression cross-validated in
  `FOLDS` stratified folds (scikit-learn's `cross_val_predict`): one forward
  pass, seconds.  A run trained on these very labels has seen them, but a
  linear probe on its features scores each image from a model fitted without it.
- without one: a small model trained on the spot in each fold, cheap settings
  (`FoldRecipe`: images held in memory at 32 px (sides <= 64) or 64 px,
  the registry's `cnn` or `resnet18`, AdamW 2e-3 one-cycle, label smoothing
  0.1, random crops and flips, `steps` per fold).  This is recog's own loop,
  not the engine: four folds through run directories, probes and reports
  would cost more than the training itself; what it must do is narrow
  (tensors in memory, no checkpoints).  Measured on hymenoptera (docs/doctor.md):
  from scratch at 64 px such a model is right on ~0.67 of the images.
Predictions (detection and segmentation): the run's, every candidate kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recog.data import read_image
from recog.errors import RecogError

FOLDS = 4


#: without --fold-steps: at most this many steps a fold, fewer where they would take longer
#: than FOLD_SECONDS in all (measured, on 2 cores: hymenoptera's 4 x 200 resnet18 steps at
#: 64 px took 140 s of its 155 s; the doctor's bar is 3 minutes for the whole command)
MAX_FOLD_STEPS = 200
FOLD_SECONDS = 100.0
MIN_FOLD_STEPS = 30


@dataclass(frozen=True)
class FoldRecipe:
    steps: int | None = None  # None: MAX_FOLD_STEPS or what fits FOLD_SECONDS
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    seed: int = 0


def _side_for(sides: Sequence[int]) -> int:
    return 32 if float(np.median(sides)) <= 64 else 64


def _load(paths: Sequence[Path], side: int, progress: Callable[[int], None] | None) -> torch.Tensor:
    """(N, 3, S', S') float in [0, 1]: each image resized to S' = 1.15 S, centre-cropped square."""
    pad = int(round(side * 1.15))
    out = torch.empty(len(paths), 3, pad, pad)
    for i, p in enumerate(paths):
        img = read_image(p).float().div_(255)[None]
        h, w = img.shape[-2:]
        scale = pad / min(h, w)
        img = F.interpolate(
            img, size=(max(pad, round(h * scale)), max(pad, round(w * scale))),
            mode="bilinear", antialias=True, align_corners=False,
        )  # fmt: skip
        top, left = (img.shape[-2] - pad) // 2, (img.shape[-1] - pad) // 2
        out[i] = img[0, :, top : top + pad, left : left + pad]
        if progress is not None:
            progress(1)
    return out


def _augment(x: torch.Tensor, side: int, gen: torch.Generator) -> torch.Tensor:
    out = torch.empty(x.shape[0], 3, side, side)
    full = x.shape[-1]
    for i in range(x.shape[0]):
        s = int(torch.randint(int(side * 0.8), full + 1, (1,), generator=gen))
        a, b = (int(v) for v in torch.randint(0, full - s + 1, (2,), generator=gen))
        crop = F.interpolate(x[i : i + 1, :, a : a + s, b : b + s], size=(side, side),
                             mode="bilinear", align_corners=False)[0]  # fmt: skip
        out[i] = crop.flip(-1) if bool(torch.rand(1, generator=gen) < 0.5) else crop
    return out


def _train_fold(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, side: int, recipe: FoldRecipe, seed: int
) -> torch.nn.Module:
    from recog.models.factory import create_model

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = create_model(
        "cnn" if side <= 32 else "resnet18", num_classes=num_classes, img_size=side
    )
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=recipe.steps)
    model.train()
    step = 0
    while step < recipe.steps:
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(order), recipe.batch):
            idx = order[start : start + recipe.batch]
            if len(idx) < 2 or step >= recipe.steps:
                continue  # a batch of one breaks batch norm
            loss = F.cross_entropy(model(_augment(x[idx], side, gen)), y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
    return model.eval()


def _folds(labels: np.ndarray, seed: int) -> list[np.ndarray]:
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels)
    k = int(min(FOLDS, counts[counts > 0].min())) if (counts > 0).any() else 0
    if k < 2:
        raise RecogError("the label check needs at least 2 images of every class")
    split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [test for _, test in split.split(np.zeros(len(labels)), labels)]


def _fitting_steps(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, side: int, folds: int, recipe: FoldRecipe
) -> int:
    """MAX_FOLD_STEPS, or the steps that fit FOLD_SECONDS at the rate 5 timed steps show."""
    probe = replace(recipe, steps=6)
    start = time.perf_counter()
    _train_fold(x[: probe.batch * 6], y[: probe.batch * 6], num_classes, side, probe, recipe.seed)
    per_step = (time.perf_counter() - start) / 6
    fit = int(FOLD_SECONDS / (folds * max(per_step, 1e-6)))
    return max(MIN_FOLD_STEPS, min(MAX_FOLD_STEPS, fit))


def trained_out_of_fold(
    paths: Sequence[Path],
    labels: Sequence[int],
    num_classes: int,
    sides: Sequence[int],
    *,
    recipe: FoldRecipe = FoldRecipe(),
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """(N, C) out-of-fold probabilities from a small model trained on the other folds."""
    side = _side_for(sides)
    y_all = np.asarray(labels, dtype=np.int64)
    folds = _folds(y_all, recipe.seed)
    start = time.perf_counter()
    x = _load(paths, side, (lambda n: progress("decode", n, len(paths))) if progress else None)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    x = (x - mean) / std
    y = torch.from_numpy(y_all)
    probs = np.zeros((len(y_all), num_classes))
    margin = (x.shape[-1] - side) // 2
    steps = recipe.steps
    if steps is None:
        steps = _fitting_steps(x, y, num_classes, side, len(folds), recipe)
    recipe = replace(recipe, steps=steps)
    for k, test in enumerate(folds):
        train = np.setdiff1d(np.arange(len(y_all)), test)
        model = _train_fold(x[train], y[train], num_classes, side, recipe, recipe.seed + k)
        with torch.no_grad():
            view = x[test][:, :, margin : margin + side, margin : margin + side]
            probs[test] = F.softmax(model(view), dim=1).numpy()
        if progress is not None:
            progress("folds", k + 1, len(folds))
    model_name = "cnn" if side <= 32 else "resnet18"
    how = {
        "how": f"{len(folds)}-fold {model_name} at {side} px trained on the spot",
        "steps_per_fold": recipe.steps,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return probs, how


def strength(probs: np.ndarray, labels: Sequence[int]) -> dict[str, Any]:
    """How far the out-of-fold model can be trusted: its agreement with the given labels
    against answering the largest class for all.  cleanlab's suspects are the images the
    model contradicts, so a model that is wrong on many clean images names them too:
    `trusted` asks that it close at least half the gap from chance to perfect (digits
    cnn: 0.90 against 0.10; hymenoptera from scratch at 64 px: 0.67 against 0.50, not)."""
    y = np.asarray(labels, dtype=np.int64)
    acc = float((probs.argmax(axis=1) == y).mean()) if len(y) else 0.0
    chance = float(np.bincount(y).max() / len(y)) if len(y) else 1.0
    return {"oof_accuracy": round(acc, 4), "chance": round(chance, 4),
            "trusted": acc >= chance + 0.5 * (1 - chance)}  # fmt: skip


def probe_out_of_fold(features: np.ndarray, labels: Sequence[int], seed: int = 0) -> np.ndarray:
    """(N, C) out-of-fold probabilities of a logistic regression on `features`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels, dtype=np.int64)
    k = len(_folds(y, seed))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    probs = cross_val_predict(clf, features, y, cv=cv, method="predict_proba")
    full = np.zeros((len(y), int(y.max()) + 1))
    full[:, np.unique(y)] = probs
    return full


#: images whose median side is at most this are too small for ImageNet features (8 px digits)
PRETRAINED_MIN_SIDE = 64
PRETRAINED_MODEL = "efficientnet_lite0"


def pretrained_features(
    paths: Sequence[Path],
    sides: Sequence[int],
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[np.ndarray, str] | None:
    """(N, 1280) pooled ImageNet features of EfficientNet-Lite0 (no training), and what they
    are; None where its package is missing or the images are too small for them.

    A linear probe on these replaces the on-the-spot fold models for the label check:
    on hymenoptera with 10% of the training labels flipped, out-of-fold agreement rose
    from 0.67 (resnet18 from scratch, 64 px) to 0.9+ and cleanlab's suspects became the
    flipped images (tests/doctor/test_doctor_bars.py, docs/doctor.md)."""
    from recog.confidence.imagenet import ImageNetFeatures
    from recog.models import pretrained
    from recog.models.factory import get_spec

    record = pretrained.get(get_spec(PRETRAINED_MODEL).pretrained)
    if not record.available() or float(np.median(sides)) <= PRETRAINED_MIN_SIDE:
        return None
    network = ImageNetFeatures(record)  # the same network the OOD scores read
    size = record.input_size
    out = np.zeros((len(paths), network.dim), dtype=np.float32)
    batch = 32
    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        # the weights' own preprocessing: shorter side to size / crop_pct, centre crop
        x = _load(chunk, int(round(size / record.crop_pct / 1.15)), None)
        margin = (x.shape[-1] - size) // 2
        x = x[:, :, margin : margin + size, margin : margin + size]
        out[start : start + len(chunk)] = network(x).numpy()
        if progress is not None:
            progress("ImageNet features", start + len(chunk), len(paths))
    return out, f"{record.name} ImageNet features ({record.source()})"


def run_features(recognizer: Any, paths: Sequence[Path]) -> np.ndarray | None:
    """The run's penultimate features of `paths` (classifiers; None for other tasks)."""
    from recog.confidence.facet import CONFIDENCE
    from recog.confidence.features import collect_files

    if not CONFIDENCE.has(recognizer.task):
        return None
    out = collect_files(recognizer.task, recognizer.model, recognizer.spec, list(paths),
                        recognizer.device)  # fmt: skip
    return out.features.cpu().numpy()


def check_run_classes(recognizer: Any, class_names: Sequence[str], task: str) -> None:
    if str(recognizer.config.task) != task:
        raise RecogError(
            f"{recognizer.run_dir}: a {recognizer.config.task} run, but this data is {task}"
        )
    if list(recognizer.class_names) != list(class_names):
        raise RecogError(
            f"{recognizer.run_dir}: its classes {list(recognizer.class_names)[:5]} are not "
            f"this data's {list(class_names)[:5]}"
        )
