"""Training data: any segflow dataset with semantic masks, with joint image/mask augmentation
(torchvision.transforms.v2). Each sample's augmentation is drawn from its own generator seeded
by (seed, epoch, index), so a run is reproducible and a resumed run sees the same batches."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from segflow.errors import SegflowError
from segflow.formats import Dataset


def to_tensor_image(img: np.ndarray) -> torch.Tensor:
    """uint8 HxW(xC) -> float (3, H, W) in 0..1 (grey replicated; alpha dropped)."""
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    if img.dtype == np.uint16:
        return torch.from_numpy((img / 65535.0).astype(np.float32)).permute(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def build_transform(aug, crop: int | None) -> v2.Compose:
    ts: list = []
    lo, hi = aug.scale
    if crop:
        ts.append(v2.RandomResizedCrop(crop, scale=(lo * lo * 0.25, min(1.0, hi * hi * 0.25)),
                                       ratio=(0.8, 1.25), antialias=True))
    elif (lo, hi) != (1.0, 1.0):
        ts.append(v2.RandomAffine(degrees=0, scale=(lo, hi)))
    if aug.hflip:
        ts.append(v2.RandomHorizontalFlip())
    if aug.vflip:
        ts.append(v2.RandomVerticalFlip())
    if aug.rotate:
        ts.append(v2.RandomRotation(aug.rotate))
    if aug.color_jitter:
        j = aug.color_jitter
        ts.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(0.5, j / 4)))
    if aug.blur:
        ts.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0 * aug.blur))], p=0.5))
    if aug.noise:
        ts.append(v2.RandomApply([v2.GaussianNoise(sigma=0.1 * aug.noise, clip=True)], p=0.5))
    return v2.Compose(ts)


def instance_distance(ids: np.ndarray) -> np.ndarray:
    """Per-object distance to the object's border, scaled to 1 at its centre (0 outside
    objects): the target of a U-Net distance head, whose peaks seed the watershed that splits
    touching objects (:func:`segflow.models.panoptic.instances_from_semantic`)."""
    from scipy import ndimage

    out = np.zeros(ids.shape, np.float32)
    for k, sl in enumerate(ndimage.find_objects(ids), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
        m = ids[sl] == k
        d = ndimage.distance_transform_edt(m)
        out[sl][m] = (d[m] / d.max()).astype(np.float32)
    return out


def thing_ids(item) -> np.ndarray:
    """An item's objects as an id map (0 = no object), from its panoptic or instance labels."""
    if item.panoptic is not None:
        pan = item.panoptic
        things = {s.id for s in pan.segments if s.isthing and not s.iscrowd}
        seg = pan.seg_ids
        return np.where(np.isin(seg, list(things)), seg, 0).astype(np.int64)
    if item.instances is not None:
        return item.instances.id_map().astype(np.int64)
    raise SegflowError(f"{item.name}: a distance head needs object labels (panoptic or instances)")


class SegDataset(torch.utils.data.Dataset):
    """Samples ``(image, mask)``, or ``(image, mask, distance)`` with ``distance=True``."""

    def __init__(self, ds: Dataset, indices: list[int], *, transform=None, seed: int = 0,
                 ignore_index: int = 255, distance: bool = False):
        self.ds, self.indices, self.transform = ds, indices, transform
        self.seed, self.epoch, self.ignore_index = seed, 0, ignore_index
        self.distance = distance

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        it = self.ds[self.indices[k]]
        if it.semantic is None:
            raise SegflowError(f"{it.name}: no semantic mask; training needs semantic labels")
        img = tv_tensors.Image(to_tensor_image(it.image()))
        mask = tv_tensors.Mask(torch.from_numpy(it.semantic.ids.astype(np.int64)))
        extra = [tv_tensors.Mask(torch.from_numpy(thing_ids(it)))] if self.distance else []
        if self.transform is not None and len(self.transform.transforms):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_mix(self.seed, self.epoch, self.indices[k]))
                img, mask, *extra = self.transform(img, mask, *extra)
        out = (img.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor))
        if self.distance:  # after the geometric augmentation, so it matches the crop
            out += (torch.from_numpy(instance_distance(extra[0].numpy())),)
        return out


def _mix(*ints: int) -> int:
    h = hashlib.blake2b(np.array(ints, np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFFFFFFFFFF


def pad_collate(batch, ignore_index: int = 255):
    """Stack samples of different sizes: pad images with 0 and masks with the ignore id.
    Samples with a distance map give ``(images, (masks, distances))``, distances padded -1."""
    h = max(b[0].shape[1] for b in batch)
    w = max(b[0].shape[2] for b in batch)
    imgs = torch.zeros(len(batch), 3, h, w)
    masks = torch.full((len(batch), h, w), ignore_index, dtype=torch.int64)
    dist = torch.full((len(batch), h, w), -1.0) if len(batch[0]) == 3 else None
    for i, (im, m, *d) in enumerate(batch):
        imgs[i, :, : im.shape[1], : im.shape[2]] = im
        masks[i, : m.shape[0], : m.shape[1]] = m
        if dist is not None:
            dist[i, : m.shape[0], : m.shape[1]] = d[0]
    return imgs, (masks if dist is None else (masks, dist))


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    return np.random.default_rng([seed, epoch]).permutation(n).tolist()


def fingerprint(ds: Dataset) -> str:
    """A fingerprint of the training data: names and file sizes (fast, not a content hash)."""
    h = hashlib.sha256()
    for p in sorted(ds.root.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(ds.root)}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]
