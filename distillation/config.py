"""The flags of train.py: one dataclass (its defaults are the default run) and their checks.

harness.add_config_flags turns every field into a --kebab-case flag, HELP gives its help text,
and validate() refuses a value that cannot work in one line before any work is done.
"""

from dataclasses import dataclass

from data import DATASETS
from harness import check
from model import STUDENTS

ROLES = ("teacher", "student", "kd")
TRANSFER_SETS = ("labelled", "augmented", "unlabelled")


@dataclass
class TrainConfig:
    role: str = "kd"
    student: str = "cnn"
    temperature: float = 4.0
    alpha: float = 0.9
    transfer_set: str = "labelled"
    omit_class: int = -1
    label_fraction: float = 0.1  # the default: a student starved of labels, where KD helps (README)
    teacher_dir: str = ""
    teacher_steps: int = 0
    dataset: str = "digits"
    data_dir: str = "data"
    download: bool = False
    test_set_only: bool = False
    max_shift: int = 1
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    schedule_steps: int = 0
    eval_every: int = 250
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    dtype: str = "auto"
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False


HELP = {
    "role": f"{' | '.join(ROLES)}: what this run trains (kd trains OUT_DIR/teacher first if missing)",
    "student": f"student network: {' | '.join(STUDENTS)}",
    "temperature": "T of the soft targets (kd), > 0",
    "alpha": "weight of the soft term T^2 KL; 1 - alpha goes to the hard labels (kd)",
    "transfer_set": f"{' | '.join(TRANSFER_SETS)}: the student's images (augmented: shifted; unlabelled: all training images, shifted, no labels, --alpha 1)",
    "omit_class": "remove every example of this class from the student's transfer set (-1: none)",
    "label_fraction": "fraction of the training images (stratified) the student has labels for",
    "teacher_dir": "the teacher's run folder (default: OUT_DIR/teacher); reused when its checkpoint exists",
    "teacher_steps": "steps of a teacher that kd trains itself (0: --steps)",
    "dataset": f"{' | '.join(DATASETS)}",
    "test_set_only": "mnist/fashion-mnist from the 10,000 test images alone: lenet's 8,000 / 2,000 split, the 8,000 as 7,000 train + 1,000 val",
    "max_shift": "augmentation: random shifts of up to this many pixels",
    "steps": "optimizer steps of this run",
    "lr": "Adam learning rate (cosine decay to 0 over --schedule-steps)",
    "schedule_steps": "the LR schedule's horizon (0: --steps of the first run)",
    "device": "auto | cpu | cuda | mps",
    "threads": "torch intra-op threads (0: half the cores)",
    "dtype": "auto | float32 | bfloat16 | float16 (auto: bfloat16 autocast on CUDA)",
}


def validate(c):
    """Every flag value that cannot work, refused in one line before any work."""
    check(c.role in ROLES, f"--role {c.role}: choose from {', '.join(ROLES)}")
    check(c.student in STUDENTS, f"--student {c.student}: choose from {', '.join(STUDENTS)}")
    check(c.temperature > 0, f"--temperature {c.temperature}: must be > 0")
    check(0 <= c.alpha <= 1, f"--alpha {c.alpha}: must be in [0, 1]")
    check(
        c.transfer_set in TRANSFER_SETS,
        f"--transfer-set {c.transfer_set}: choose from {', '.join(TRANSFER_SETS)}",
    )
    check(0 < c.label_fraction <= 1, f"--label-fraction {c.label_fraction}: must be in (0, 1]")
    check(c.dataset in DATASETS, f"--dataset {c.dataset}: choose from {', '.join(DATASETS)}")
    check(
        c.dtype in ("auto", "float32", "bfloat16", "float16"),
        f"--dtype {c.dtype}: auto, float32, bfloat16 or float16",
    )
    for name in ("steps", "batch_size", "eval_every"):
        check(getattr(c, name) > 0, f"--{name.replace('_', '-')} {getattr(c, name)}: must be > 0")
    for name in ("teacher_steps", "schedule_steps", "max_shift", "threads"):
        check(getattr(c, name) >= 0, f"--{name.replace('_', '-')} {getattr(c, name)}: must be >= 0")
    check(c.lr > 0 and c.weight_decay >= 0, "--lr must be > 0 and --weight-decay >= 0")
    if c.role == "kd" and c.transfer_set == "unlabelled":
        check(
            c.alpha == 1,
            f"--alpha {c.alpha}: an unlabelled transfer set has no labels for the hard term; pass --alpha 1",
        )
    if c.role == "student":
        check(
            c.transfer_set != "unlabelled",
            "--role student learns hard labels: --transfer-set unlabelled has none",
        )
