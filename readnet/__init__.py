"""readnet: a study kit for angular metric learning in person re-identification.

Modules, one per concept:
  losses      triplet-loss family (ReadNet eq. 5-12, expAT eq. 10)
  mining      batch-hard, all-triplets and cross-modal mining
  data        dataset readers, samplers, synthetic generator (readnet.data.synthetic)
  evaluation  distances, CMC/mAP, SYSU-MM01 and RegDB protocols
  models      ResNet backbones, heads, camera discriminator, MNIST net
  train       typed configs, presets, the training engine and run folders
  plots       figures shared by the notebooks
  published   the papers' published numbers
  reproduce   the papermill notebook runner
"""

__version__ = "0.1.0"
