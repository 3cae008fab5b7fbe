"""Instance segmentation training (Mask R-CNN): the same loop, checkpoints and resume as the
semantic trainer, with targets built from the data model and COCO mask AP for validation."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from segflow.train.data import _mix, to_tensor_image


class InstDataset(torch.utils.data.Dataset):
    """Items as (image (3, H, W) float, target dict) with labels 1..K (K things)."""

    def __init__(self, ds, indices, label_of: dict[int, int], *, hflip: bool, seed: int):
        self.ds, self.indices, self.label_of = ds, indices, label_of
        self.flip = v2.RandomHorizontalFlip() if hflip else None
        self.seed, self.epoch = seed, 0

    def __len__(self):
        return len(self.indices)

    def raw(self, k: int):
        it = self.ds[self.indices[k]]
        inst = it.instances
        if inst is None and it.panoptic is not None:
            inst = it.panoptic.to_instances()
        items = [i for i in (inst.items if inst else []) if not i.iscrowd
                 and i.category_id in self.label_of]
        h, w = it.height, it.width
        masks = (np.stack([i.mask for i in items]) if items else np.zeros((0, h, w), np.uint8))
        labels = np.array([self.label_of[i.category_id] for i in items], np.int64)
        return it, to_tensor_image(it.image()), masks, labels

    def __getitem__(self, k: int):
        _, img, masks, labels = self.raw(k)
        img = tv_tensors.Image(img)
        m = tv_tensors.Mask(torch.from_numpy(masks))
        if self.flip is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_mix(self.seed, self.epoch, self.indices[k]))
                img, m = self.flip(img, m)
        m = m.as_subclass(torch.Tensor).to(torch.uint8)
        keep = m.flatten(1).bool().any(1) if len(m) else torch.zeros(0, dtype=torch.bool)
        m, lab = m[keep], torch.from_numpy(labels)[keep]
        boxes = torch.zeros((len(m), 4))
        for j in range(len(m)):
            ys, xs = torch.nonzero(m[j], as_tuple=True)
            boxes[j] = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                                    dtype=torch.float32)
        return img.as_subclass(torch.Tensor), {"boxes": boxes, "labels": lab, "masks": m}


@torch.no_grad()
def coco_ap(model, dataset: InstDataset, cat_of: dict[int, int], device) -> dict:
    """Mask AP (pycocotools) of ``model`` on ``dataset``; ``cat_of`` maps labels to class ids."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    model.eval()
    images, gts, dets = [], [], []
    for k in range(len(dataset)):
        it, img, masks, labels = dataset.raw(k)
        h, w = img.shape[1:]
        images.append({"id": k + 1, "height": h, "width": w})
        for m, lab in zip(masks, labels):
            rle = mask_utils.encode(np.asfortranarray(m))
            gts.append({"id": len(gts) + 1, "image_id": k + 1, "category_id": cat_of[int(lab)],
                        "segmentation": rle, "area": float(mask_utils.area(rle)),
                        "bbox": mask_utils.toBbox(rle).tolist(), "iscrowd": 0})
        out = model([img.to(device)])[0]
        for m, s, lab in zip(out["masks"], out["scores"], out["labels"]):
            rle = mask_utils.encode(np.asfortranarray((m[0] >= 0.5).cpu().numpy().astype(np.uint8)))
            dets.append({"image_id": k + 1, "category_id": cat_of[int(lab)],
                         "segmentation": rle, "score": float(s)})
    cats = [{"id": c} for c in sorted(set(cat_of.values()))]
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO()
        api.dataset = {"images": images, "annotations": gts, "categories": cats}
        api.createIndex()
        if not dets:
            return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
        e = COCOeval(api, api.loadRes(dets), iouType="segm")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return {"ap": float(e.stats[0]), "ap50": float(e.stats[1]), "ap75": float(e.stats[2])}


class InstanceStep:
    """Mask R-CNN: targets (boxes, labels 1..K, masks) from the data model, the model's own
    losses summed, COCO mask AP for validation."""

    default_metric = "ap50"
    instance = True
    validate_at_end = False
    model_args: dict = {}

    def __init__(self, tr, train_idx: list[int], val_idx: list[int]):
        from segflow.errors import SegflowError

        cfg = tr.cfg
        things = tr.schema.thing_ids
        if not things:
            raise SegflowError(f"{cfg.data.train}: the label schema has no thing classes to "
                               "detect")
        tr.label_of = self.label_of = {c: k + 1 for k, c in enumerate(things)}
        tr.cat_of = self.cat_of = {k: c for c, k in self.label_of.items()}
        self.train_set = InstDataset(tr.train_ds, train_idx, self.label_of,
                                     hflip=cfg.augment.hflip, seed=cfg.seed)
        self.val_set = InstDataset(tr.val_ds, val_idx, self.label_of, hflip=False, seed=cfg.seed)
        self.num_classes = len(things) + 1

    def prepare(self, tr) -> None:
        tr.channels_last = False

    def order(self, tr) -> list[int]:
        from segflow.train.data import epoch_order

        return epoch_order(len(self.train_set), tr.cfg.seed, tr.epoch)

    def batch(self, tr, order: list[int], b: int):
        bs = tr.cfg.train.batch_size
        self.train_set.epoch = tr.epoch
        samples = [self.train_set[k] for k in order[b * bs:(b + 1) * bs]]
        return ([im.to(tr.device) for im, _ in samples],
                [{k: v.to(tr.device) for k, v in t.items()} for _, t in samples])

    def loss(self, tr, imgs, targets) -> torch.Tensor:
        return sum(tr.net(imgs, targets).values())

    def validate(self, tr) -> dict:
        if not len(self.val_set):
            return {}
        return coco_ap(tr.model, self.val_set, self.cat_of, tr.device)

    def state(self) -> dict:
        return {"label_to_class": self.cat_of}
