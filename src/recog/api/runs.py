"""A run's directory and what is built from its config: the model, the task, where a new run goes.

`recog.api.train` and `recog.api.load` both build through here, so a loaded run is
built exactly as it was trained.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from recog import io as rio
from recog.confidence import CONFIDENCE_FILES
from recog.config import TrainConfig
from recog.engine.trainer import CHECKPOINT_NAME, RESULTS_NAME, WEIGHTS_NAME
from recog.errors import RecogError
from recog.models.factory import create_model, get_spec
from recog.models.registry import ModelSpec
from recog.paths import refuse_overlap
from recog.tasks import Task, task_class

CONFIG_NAME = "config.yaml"
LABELS_NAME = "labels.json"


# ------------------------------------------------------------------ building
def build_task(cfg: TrainConfig, class_names: list[str], spec: ModelSpec) -> Task:
    """The run's task, its class picked from the model's spec (`recog.tasks.task_class`)."""
    return task_class(spec).from_config(cfg, class_names, spec)


def build_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, ModelSpec]:
    spec = get_spec(str(cfg.model))
    model = create_model(
        str(cfg.model), num_classes=num_classes, img_size=cfg.img_size, **cfg.model_args
    )
    return model, spec


#: what a run writes besides config.yaml and labels.json: removed before a run reuses its directory
RUN_OUTPUTS = (
    "plots",
    "val",
    "report.html",
    "metrics.json",
    RESULTS_NAME,
    WEIGHTS_NAME,
    CHECKPOINT_NAME,
    *CONFIDENCE_FILES,
    # exported files and their timings belong to the old weights (`recog export`, `bench`)
    "export",
    "bench",
)


def _run_dir(cfg: TrainConfig, data_name: str, *, exist_ok: bool = False) -> Path:
    """The new run's directory: `--out` (a run there is refused unless `exist_ok`), or a new
    numbered `runs/<task>/<name>`.  With `exist_ok` the old run's outputs are removed first,
    so nothing of it is left beside the new model."""
    if cfg.out:
        path = _check_out(Path(cfg.out), exist_ok=exist_ok, data=cfg.data)
        if is_run(path):
            _clear_run(path)
        elif exist_ok and path.is_dir():
            rio.remove_stale_temps(path)
        return path
    base = (
        Path("runs")
        / str(cfg.task)
        / (cfg.name or f"{data_name}-{str(cfg.model).replace(':', '_')}")
    )
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    refuse_overlap(path, _data_folders(cfg.data), flag="run folder")  # run in the data's folder
    return path


def is_run(path: Path) -> bool:
    """A folder recog trained into: the two files a run writes before its first step."""
    return (path / CONFIG_NAME).is_file() and (path / LABELS_NAME).is_file()


def _check_out(path: Path, *, exist_ok: bool, data: str | None) -> Path:
    """`path` if a new run may be written there (checked before any data is read): new, empty,
    or a run (`exist_ok`); never the data's folder, inside it or around it (its plots/
    would read as a class, and replacing the run would delete the data's val/)."""
    if path.exists() and not path.is_dir():
        raise RecogError(f"{path}: --out names a file, not a run directory")
    refuse_overlap(path, _data_folders(data), flag="--out")
    if is_run(path):
        if not exist_ok:
            raise RecogError(
                f"{path}: already holds a run (give another --out, --exist-ok to replace it, "
                f"or --resume {path} to continue it)"
            )
    elif path.is_dir() and any(path.iterdir()):
        raise RecogError(
            f"--out {path}: a folder that is not empty and not a recog run (no {CONFIG_NAME} "
            f"and {LABELS_NAME}); give a new or empty folder"
        )
    return path


def _data_folders(data: str | None) -> list[Path]:
    """The folder `--data` names, or the folder of the file it names (a COCO JSON, data.yaml,
    CSV); none for a built-in set (`digits`, `shapes`)."""
    path = Path(data) if data else None
    if path is None or not path.exists():
        return []
    return [path if path.is_dir() else path.parent]


def _clear_run(path: Path) -> None:
    import shutil

    for name in RUN_OUTPUTS:
        entry = path / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
    rio.remove_stale_temps(path)
