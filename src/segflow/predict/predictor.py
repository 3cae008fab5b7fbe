"""Prediction from a checkpoint: whole image or tiled, optional flip test-time augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from segflow.errors import SegflowError
from segflow.io import list_images, read_image, write_ids, write_image, write_mask
from segflow.models.registry import model_info
from segflow.train import checkpoint as ckpt
from segflow.train.data import to_tensor_image


class Predictor:
    def __init__(self, checkpoint: str | Path, *, device: str = "auto"):
        from segflow.train.trainer import pick_device

        self.checkpoint, self.device_name = str(checkpoint), device
        self.ck = ckpt.load(checkpoint)
        self.device = pick_device(device)
        self.model = ckpt.build_model(self.ck).to(self.device)
        self.schema = ckpt.schema_of(self.ck)
        self.num_classes = self.ck["model"]["args"]["num_classes"]
        self.instance = model_info(self.ck["model"]["name"]).task == "instance"
        self.cat_of = {int(k): v for k, v in (self.ck.get("label_to_class") or {}).items()}
        self._unused = torch.ones(self.num_classes, dtype=torch.bool)
        self._unused[[i for i in self.schema.ids if i < self.num_classes]] = False
        if self.instance or self._unused.all():
            self._unused[:] = False

    @torch.no_grad()
    def _mrcnn_instances(self, image: np.ndarray, *, score_threshold: float = 0.5):
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
        p = self._softmax(self.model(x))
        if tta:
            p = (p + self._softmax(self.model(x.flip(-1))).flip(-1)) / 2
        return p

    def _softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities over the schema's ids only: an id that is no class (class ids
        starting at 1 leave 0 unused) is never predicted, however briefly a model trained."""
        logits = logits.float()[:, :self.num_classes]
        if self._unused.any():
            logits = logits.masked_fill(self._unused.to(logits.device)[None, :, None, None],
                                        float("-inf"))
        return logits.softmax(1)

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

    @property
    def has_distance(self) -> bool:
        return bool(self.ck["model"]["args"].get("extra_outputs"))

    @torch.no_grad()
    def _distance_outputs(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(C, H, W) class probabilities and (H, W) distance map, from one forward pass."""
        if not self.has_distance:
            raise SegflowError("this checkpoint has no distance output; train with "
                               "loss.distance_weight > 0")
        out = self.model(to_tensor_image(image)[None].to(self.device))
        probs = self._softmax(out)[0].cpu().numpy()
        return probs, out[0, self.num_classes].float().sigmoid().cpu().numpy()

    def predict_with_distance(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class map and (H, W) float32 distance map (0..1, peaks at object centres) of a U-Net
        trained with a distance head (``loss.distance_weight``), from one forward pass."""
        probs, dist = self._distance_outputs(image)
        return probs.argmax(0).astype(np.uint8), dist

    def distance(self, image: np.ndarray) -> np.ndarray:
        return self.predict_with_distance(image)[1]

    @property
    def makes_objects(self) -> bool:
        """Whether ``predict`` writes objects: Mask R-CNN, or a U-Net with a distance head."""
        return self.instance or self.has_distance

    def instances(self, image: np.ndarray, *, score_threshold: float = 0.5):
        """(Instances, class mask) for one image: Mask R-CNN's detections, or a semantic
        model's thing classes split into objects."""
        if self.instance:
            return self._mrcnn_instances(image, score_threshold=score_threshold)
        return self._semantic_instances(image)

    def _semantic_instances(self, image: np.ndarray):
        """Objects of a semantic model: its thing classes split by watershed, seeded by the
        distance head's peaks when it has one. An object's score is the mean probability of
        its class over its pixels (so COCO's AP can rank them)."""
        from segflow.models.panoptic import instances_from_semantic

        if self.has_distance:
            probs, dist = self._distance_outputs(image)
        else:
            probs, dist = self.probabilities(image), None
        sem = probs.argmax(0).astype(np.uint8)
        inst = instances_from_semantic(sem.astype(np.int32), self.schema, distance=dist)
        for it in inst.items:
            it.score = float(probs[it.category_id][it.mask.astype(bool)].mean())
        return inst, sem

    def predict(self, image: np.ndarray, **kw) -> np.ndarray:
        return self.probabilities(image, **kw).argmax(0).astype(np.uint8)

    def panoptic(self, image: np.ndarray, things: Predictor | None = None, *,
                 score_threshold: float = 0.5, overlap_threshold: float = 0.5,
                 min_stuff_area: int = 64, tile: int | None = None, overlap: int = 64,
                 tta: bool = False):
        """Panoptic-FPN fusion: stuff from this (semantic) model, things from ``things`` (a
        Mask R-CNN checkpoint trained on the same schema), or, without ``things``, from this
        model's own objects (its thing classes split by the distance head, else by the
        distance transform)."""
        from segflow.models.panoptic import fuse_panoptic

        if self.instance:
            raise SegflowError("panoptic prediction needs a semantic checkpoint (give the Mask "
                               "R-CNN one as --things)")
        if things is None:
            inst, sem = self._semantic_instances(image)
        else:
            if not things.instance:
                raise SegflowError("--things needs a Mask R-CNN checkpoint")
            if [c.id for c in things.schema.classes] != [c.id for c in self.schema.classes]:
                raise SegflowError("--things: the two checkpoints were trained on different "
                                   "label schemas")
            sem = self.predict(image, tile=tile, overlap=overlap, tta=tta)
            inst, _ = things.instances(image, score_threshold=0.0)
        masks = (np.stack([i.mask for i in inst.items]) if inst.items
                 else np.zeros((0, *image.shape[:2]), np.uint8))
        return fuse_panoptic(sem, masks, np.array([i.score for i in inst.items], np.float32),
                             np.array([i.category_id for i in inst.items], np.int64), self.schema,
                             score_threshold=score_threshold if things is not None else 0.0,
                             overlap_threshold=overlap_threshold, min_stuff_area=min_stuff_area)

    def run_panoptic(self, inputs, out: str | Path, things: Predictor | None = None, *,
                     progress: bool = True, **kw) -> tuple[list[str], list[str]]:
        """Panoptic predictions for images and folders, written as COCO panoptic."""
        from rich.progress import track

        from segflow.formats import Sample, coco_panoptic

        out = Path(out)
        failures: list[str] = []

        def items():
            for p in track(list_images(inputs), description="predict panoptic", disable=not progress):
                try:
                    img = read_image(p)
                except Exception as e:  # noqa: BLE001 - reported, others go on
                    failures.append(str(e))
                    continue
                yield Sample(p.stem, None, self.panoptic(img, things, **kw))

        coco_panoptic.write(out, self.schema, items())
        return [str(out / "annotations" / "panoptic_default.json")], failures

    def run(self, inputs, out: str | Path, *, tile: int | None = None, overlap: int = 64,
            tta: bool = False, probs: bool = False, overlay: bool = True, progress: bool = True,
            raster: dict | None = None, engine=None):
        """Per image: ``_mask.png`` (class ids) and ``_overlay.png``; for checkpoints that make
        objects (:attr:`makes_objects`) also ``_instances.png`` (16-bit object ids) and one
        ``detections.json`` (COCO results, images named by ``file_name``); with ``probs``,
        ``_probs.npy`` for the plain semantic models. GeoTIFFs go to
        :func:`segflow.geo.predict.predict_raster` (a georeferenced ``_mask.tif``, windowed;
        ``raster`` holds their band options).

        ``inputs`` and ``out`` may be URLs (``s3://...``). ``engine`` (a
        :func:`segflow.engines.get_engine`) runs the images elsewhere, each worker loading
        the checkpoint once; the files written are the same."""
        from rich.progress import Progress

        from segflow import remote
        from segflow.pipeline.runner import list_inputs

        paths = list_inputs(inputs)
        if remote.is_url(out):
            remote.check_writable(str(out))
        opts = dict(tile=tile, overlap=overlap, tta=tta, probs=probs, overlay=overlay,
                    raster=raster)
        results: list = [None] * len(paths)
        with Progress(disable=not progress) as bar:
            task = bar.add_task("predict", total=len(paths))

            def done(i, r):
                results[i] = r
                bar.advance(task)

            if engine is None:
                for i, p in enumerate(paths):
                    done(i, self.predict_file(p, out, **opts))
            else:
                engine.map(_predict_item, [(self.checkpoint, self.device_name, p, str(out), opts)
                                           for p in paths], done,
                           lambda i, e: ([], [f"{paths[i]}: worker failed ({e})"], []))
        written, failures, detections = [], [], []
        for w, f, d in results:
            written += w
            failures += f
            detections += d
        if self.makes_objects:
            from segflow.formats.base import _np_default

            text = json.dumps(detections, separators=(",", ":"), default=_np_default)
            written.append(remote.write_bytes(remote.join(str(out), "detections.json"),
                                              text.encode()))
        return written, failures

    def predict_file(self, path, out, **opts) -> tuple[list[str], list[str], list[dict]]:
        """One image (a path or URL) into ``out`` (a folder or URL): (files written, failures,
        detections)."""
        from segflow.remote import Stage

        try:
            with Stage(path, out) as st:
                written, failures, dets = self._predict_local(st.src, st.out, **opts)
                return st.publish(written), [f.replace(str(st.src), st.url) for f in failures], \
                    [{**d, "file_name": Path(st.url).name} for d in dets]
        except SegflowError as e:  # fetching or uploading failed
            return [], [str(e)], []

    def _predict_local(self, p: Path, out: Path, *, tile=None, overlap=64, tta=False,
                       probs=False, overlay=True, raster=None):
        from segflow.geo import wants_geo
        from segflow.ops.draw import draw_overlay

        written: list = []
        try:
            if wants_geo(p):
                from segflow.geo.predict import predict_raster

                return predict_raster(self, p, out, tile=tile, overlap=overlap, tta=tta,
                                      options=raster), [], []
            img = read_image(p)
        except Exception as e:  # noqa: BLE001 - reported, others go on
            return [], [str(e)], []
        inst, pr, detections = None, None, []
        if self.makes_objects:
            inst, mask = self.instances(img)
        else:
            pr = self.probabilities(img, tile=tile, overlap=overlap, tta=tta)
            mask = pr.argmax(0).astype(np.uint8)
        written.append(str(write_mask(out / f"{p.stem}_mask.png", mask,
                                      palette=self.schema.palette())))
        if inst is not None:
            ids = inst.id_map()
            written.append(str(write_ids(out / f"{p.stem}_instances.png", ids)))
            detections = [{"file_name": p.name, "category_id": it.category_id,
                           "segmentation": it.rle, "bbox": it.bbox, "score": it.score}
                          for it in inst.items]
        if probs and pr is not None:
            np.save(out / f"{p.stem}_probs.npy", pr.astype(np.float16))
            written.append(str(out / f"{p.stem}_probs.npy"))
        if overlay:
            ov = (draw_overlay(img, labels=ids, boxes=[i.bbox for i in inst.items])
                  if inst is not None else draw_overlay(img, mask, palette=self.schema.palette()))
            written.append(str(write_image(out / f"{p.stem}_overlay.png", ov)))
        return written, [], detections


_PREDICTORS: dict = {}  # (checkpoint, device) -> Predictor, one per worker process


def _predict_item(checkpoint: str, device: str, path, out: str, opts: dict):
    """An engine's work item: one image, with this process's Predictor (loaded once)."""
    key = (checkpoint, device)
    if key not in _PREDICTORS:
        _PREDICTORS[key] = Predictor(checkpoint, device=device)
    return _PREDICTORS[key].predict_file(path, out, **opts)
