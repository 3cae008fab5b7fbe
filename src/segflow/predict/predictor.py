"""Prediction from a checkpoint: whole image or tiled, optional flip test-time augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from segflow.io import list_images, read_image, write_ids, write_image, write_mask
from segflow.train import checkpoint as ckpt
from segflow.train.data import to_tensor_image


class Predictor:
    def __init__(self, checkpoint: str | Path, *, device: str = "auto"):
        from segflow.train.trainer import pick_device

        self.ck = ckpt.load(checkpoint)
        self.device = pick_device(device)
        self.model = ckpt.build_model(self.ck).to(self.device)
        self.schema = ckpt.schema_of(self.ck)
        self.num_classes = self.ck["model"]["args"]["num_classes"]
        self.instance = self.ck.get("task") == "instance"
        self.cat_of = {int(k): v for k, v in (self.ck.get("label_to_class") or {}).items()}

    @torch.no_grad()
    def instances(self, image: np.ndarray, *, score_threshold: float = 0.5):
        """Mask R-CNN checkpoints: (Instances, class mask) for one image."""
        from segflow.annotations import Instance, Instances

        out = self.model([to_tensor_image(image).to(self.device)])[0]
        h, w = image.shape[:2]
        inst = Instances(h, w)
        for m, s, lab in zip(out["masks"], out["scores"], out["labels"]):
            if float(s) < score_threshold:
                continue
            mask = (m[0] >= 0.5).cpu().numpy().astype(np.uint8)
            if mask.any():
                inst.items.append(Instance.from_mask(mask, self.cat_of[int(lab)],
                                                     id=len(inst.items) + 1, score=float(s)))
        ids = inst.id_map()
        cls = np.zeros((h, w), np.uint8)
        for it in inst.items:
            cls[ids == it.id] = it.category_id
        return inst, cls

    @torch.no_grad()
    def _probs(self, x: torch.Tensor, tta: bool) -> torch.Tensor:
        x = x.to(self.device)
        p = self.model(x).float().softmax(1)
        if tta:
            p = p + self.model(x.flip(-1)).float().softmax(1).flip(-1)
            p = p / 2
        return p

    @torch.no_grad()
    def probabilities(self, image: np.ndarray, *, tile: int | None = None, overlap: int = 64,
                      tta: bool = False) -> np.ndarray:
        """(C, H, W) float32 class probabilities."""
        from segflow.predict.tiling import predict_tiled

        x = to_tensor_image(image)
        if tile and (x.shape[1] > tile or x.shape[2] > tile):
            p = predict_tiled(lambda b: self._probs(b, tta), x, self.num_classes, tile=tile,
                              overlap=overlap)
        else:
            p = self._probs(x[None], tta)[0].cpu()
        return p.numpy()

    def predict(self, image: np.ndarray, **kw) -> np.ndarray:
        return self.probabilities(image, **kw).argmax(0).astype(np.uint8)

    def run(self, inputs, out: str | Path, *, tile: int | None = None, overlap: int = 64,
            tta: bool = False, probs: bool = False, overlay: bool = True, progress: bool = True):
        from rich.progress import track

        from segflow.ops.draw import draw_overlay

        out = Path(out)
        written, failures, detections = [], [], []
        paths = list_images(inputs)
        for p in track(paths, description="predict", disable=not progress):
            try:
                img = read_image(p)
            except Exception as e:  # noqa: BLE001 - reported, others go on
                failures.append(str(e))
                continue
            if self.instance:
                inst, mask = self.instances(img)
                written.append(str(write_ids(out / f"{p.stem}_instances.png", inst.id_map())))
                written.append(str(write_mask(out / f"{p.stem}_mask.png", mask,
                                              palette=self.schema.palette())))
                for it in inst.items:
                    detections.append({"file_name": p.name, "category_id": it.category_id,
                                       "segmentation": it.rle, "bbox": it.bbox,
                                       "score": it.score})
                if overlay:
                    ov = draw_overlay(img, labels=inst.id_map(),
                                      boxes=[i.bbox for i in inst.items])
                    written.append(str(write_image(out / f"{p.stem}_overlay.png", ov)))
                continue
            pr = self.probabilities(img, tile=tile, overlap=overlap, tta=tta)
            mask = pr.argmax(0).astype(np.uint8)
            written.append(str(write_mask(out / f"{p.stem}_mask.png", mask,
                                          palette=self.schema.palette())))
            if probs:
                np.save(out / f"{p.stem}_probs.npy", pr.astype(np.float16))
                written.append(str(out / f"{p.stem}_probs.npy"))
            if overlay:
                ov = draw_overlay(img, mask, palette=self.schema.palette())
                written.append(str(write_image(out / f"{p.stem}_overlay.png", ov)))
        if self.instance:
            import json

            (out / "detections.json").write_text(json.dumps(detections))
            written.append(str(out / "detections.json"))
        return written, failures
