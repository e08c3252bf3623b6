"""The eager PyTorch reference predictor, ground truth for parity and the benchmarks: the model's
own forward with optional points/boxes/masks handled dynamically (padding point, box corners,
no-mask embedding), torch postprocessing. It embeds points with the same masked sum as the
exported graphs; that sum is checked against upstream's indexing by the conformance tests."""

from __future__ import annotations

import numpy as np
import torch

from mobilesam_runtime import transforms
from mobilesam_runtime.predictor import SamPredictor

from .modeling import MobileSAM


class TorchPredictor:
    """SamPredictor semantics on the eager model. Shares only PIL resizing and coordinate
    scaling with the runtimes (both checked against upstream by the conformance tests)."""

    def __init__(self, model: MobileSAM) -> None:
        self.model = model.eval()
        self.features: torch.Tensor | None = None

    @torch.inference_mode()
    def set_image(self, image: np.ndarray) -> None:
        """HxWx3 uint8 RGB."""
        resized = transforms.resize_image(image)
        x = torch.from_numpy(np.array(resized)).permute(2, 0, 1)[None].float()
        self.features = self.model.image_encoder(self.model.preprocess(x))
        self.original_size = image.shape[:2]
        self.input_size = resized.shape[:2]

    def get_image_embedding(self) -> np.ndarray:
        return self.features.numpy()

    @torch.inference_mode()
    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None,
                multimask_output: bool = True, return_logits: bool = False):
        """(masks CxHxW, scores C, low_res Cx256x256) exactly as segment-anything computes them."""
        points = boxes = masks = None
        if point_coords is not None:
            c = transforms.transform_coords(np.asarray(point_coords), self.original_size)
            points = (torch.from_numpy(c)[None], torch.as_tensor(np.asarray(point_labels))[None])
        if box is not None:
            b = transforms.transform_coords(np.asarray(box, np.float64).reshape(2, 2),
                                            self.original_size).reshape(1, 4)
            boxes = torch.from_numpy(b)
        if mask_input is not None:
            masks = torch.as_tensor(np.asarray(mask_input, np.float32)).reshape(1, 1, 256, 256)
        sparse, dense = self.model.prompt_encoder(points, boxes, masks)
        low, iou = self.model.mask_decoder(self.features, self.model.prompt_encoder.get_dense_pe(),
                                           sparse, dense, multimask_output)
        up = self.model.postprocess_masks(low, self.input_size, self.original_size)
        if not return_logits:
            up = up > 0.0
        return up[0].numpy(), iou[0].numpy(), low[0].numpy()


__all__ = ["TorchPredictor", "SamPredictor"]
