"""readnet: a study kit for angular metric learning in person re-identification.

Modules, one per concept (docs/architecture.md says what each owns and may import):
  distances   euclidean, cosine and angular distances, row-wise and pairwise
  losses      triplet-loss family (ReadNet eq. 5-12, expAT eq. 10)
  mining      batch-hard, all-triplets and cross-modal mining
  data        dataset readers, samplers, synthetic generator (readnet.data.synthetic)
  evaluation  CMC/mAP, SYSU-MM01 and RegDB protocols, nearest-class and camera probes
  models      ResNet backbones, heads, camera discriminator, MNIST net
  config      TrainConfig, its validation and --set parsing
  presets     the papers' settings, each constant once
  augment     the training augmentation (one implementation for every device)
  batches     PK epochs, the DataLoader and the device cache of the training images
  engine      F, D, optimisers, schedule and Algorithm 1's steps
  inference   feature extraction and model evaluation
  train       the training entry: train / resume / test and the shared loop
  runs        run folders, checkpoints, RNG state, atomic writes
  mnist       ReadNet Fig. 1 on MNIST
  commands    the console script's training commands (cli dispatches)
  precision   float32 islands under autocast; when CPU bf16 is safe
  distributed DDP helpers and the sweep fan-out
  plots       figures shared by the notebooks
  published   the papers' published numbers
  explore     plain functions under the notebooks' widgets
  experiment  the notebooks' scales (typed size presets) and their shared preamble
  sweep       a grid of training runs, validated first, going on after a failure
  reproduce   the papermill notebook runner
  notebook_parameters  a notebook's parameters cell; values checked by name and type
  kernel_log  the runner's kernel log, without ipykernel's TCP warning
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# Cap oneDNN (torch's CPU convolution/matmul library) below AMX before anything imports torch.
# Its multi-threaded AMX-BF16 kernels gave NaN or wrong losses for ResNet-50 training steps under
# CPU bf16 autocast. oneDNN reads the variable once, at its first use, so it must be set before
# torch runs a kernel. AMX serves only bf16/int8 (fp16 on newer chips): float32 speed is unaffected.
# A value set by the user is kept.
ONEDNN_ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"
ONEDNN_ISA_PIN = "AVX512_CORE_BF16"
_os.environ.setdefault(ONEDNN_ISA_VARIABLE, ONEDNN_ISA_PIN)
ONEDNN_ISA_AT_IMPORT = _os.environ[ONEDNN_ISA_VARIABLE]
# torch was imported before readnet: oneDNN may have read the variable already, so the cap may
# not have taken effect (readnet.precision then refuses CPU bf16 on AMX CPUs).
TORCH_IMPORTED_BEFORE_PIN = "torch" in _sys.modules
