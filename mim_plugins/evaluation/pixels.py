"""The identity encoder: a baseline that any learned representation has to beat."""
from typing import Tuple

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


@MODELS.register_module()
class RawPixels(BaseModule):
    """A backbone without parameters whose feature is the image itself: the normalised pixels
    (as the data preprocessor leaves them), flattened. (B, C, H, W) -> ((B, C * H * W), ).

    In an ``ImageClassifier`` with ``ClsBatchNormNeck`` and a linear head it is a linear probe
    of raw pixels through exactly the encoders' protocol; ``tools/knn_probe.py`` reads the same
    config for a k-NN on raw pixels.
    """

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        return (x.flatten(1), )
