"""Test-wide settings: tests are timed for 2 CPU cores."""

import torch

torch.set_num_threads(min(2, torch.get_num_threads()))
