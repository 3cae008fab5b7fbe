import numpy as np
import pytest
from PIL import Image

from segflow.errors import ImageReadError
from segflow.io import list_images, read_image, read_mask, write_ids, write_image, write_mask


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_round_trip_rgb_and_grey(tmp_path, samples, ext):
    for img in (samples["astronaut"], samples["camera"]):
        p = tmp_path / f"x{ext}"
        if ext == ".webp":
            Image.fromarray(img).save(p, lossless=True)
        else:
            Image.fromarray(img).save(p)
        got = read_image(p)
        if ext == ".webp" and img.ndim == 2:  # WebP has no grey mode: stored as RGB
            got = got[..., 0]
        assert np.array_equal(got, img)


def test_rgba_png_and_jpeg(tmp_path, samples):
    rgba = np.dstack([samples["astronaut"], np.full(samples["camera"].shape, 200, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert np.array_equal(read_image(tmp_path / "a.png"), rgba)
    Image.fromarray(samples["astronaut"]).save(tmp_path / "a.jpg", quality=95)
    jpg = read_image(tmp_path / "a.jpg")
    assert jpg.shape == (512, 512, 3) and jpg.dtype == np.uint8
    assert np.abs(jpg.astype(int) - samples["astronaut"]).mean() < 3


def test_16bit_png_and_tiff(tmp_path):
    img = (np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) * 13 % 65536).astype(np.uint16)
    write_image(tmp_path / "a.png", img)
    Image.fromarray(img).save(tmp_path / "a.tif")
    for name in ("a.png", "a.tif"):
        got = read_image(tmp_path / name)
        assert got.dtype == np.uint16 and np.array_equal(got, img)


def test_multipage_tiff_reads_first_page(tmp_path):
    pages = [Image.fromarray(np.full((8, 9), v, np.uint8)) for v in (10, 20, 30)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    got = read_image(tmp_path / "m.tif")
    assert got.shape == (8, 9) and (got == 10).all()


def test_palette_image_expands_to_rgb_and_read_mask_keeps_indices(tmp_path):
    ids = (np.arange(30 * 40).reshape(30, 40) % 7).astype(np.uint8)
    write_mask(tmp_path / "m.png", ids)
    with Image.open(tmp_path / "m.png") as im:
        assert im.mode == "P"
        pal = np.array(im.getpalette()[: 7 * 3], np.uint8).reshape(7, 3)
    assert np.array_equal(read_mask(tmp_path / "m.png"), ids)
    assert np.array_equal(read_image(tmp_path / "m.png"), pal[ids])


def test_instance_ids_16bit_round_trip(tmp_path):
    ids = np.random.default_rng(0).integers(0, 65536, (50, 60)).astype(np.int32)
    write_ids(tmp_path / "i.png", ids)
    with Image.open(tmp_path / "i.png") as im:
        assert im.mode.startswith("I")
    assert np.array_equal(read_mask(tmp_path / "i.png"), ids)


def test_exif_orientation_is_applied(tmp_path, samples):
    img = samples["astronaut"][:100, :60]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(img).save(tmp_path / "o.png", exif=exif)
    got = read_image(tmp_path / "o.png")
    assert np.array_equal(got, np.rot90(img, k=-1))


def test_write_is_atomic_no_temp_left(tmp_path, samples):
    write_image(tmp_path / "a.png", samples["camera"])
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_list_images_recursive(tmp_path, samples):
    (tmp_path / "sub").mkdir()
    write_image(tmp_path / "a.png", samples["camera"])
    write_image(tmp_path / "sub" / "b.png", samples["camera"])
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images([tmp_path])] == ["a.png", "b.png"]


# ---- bad input: one test each -----------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")


def test_not_an_image(tmp_path):
    p = tmp_path / "fake.png"
    p.write_text("hello, I am text")
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(p)


def test_truncated_file(tmp_path, samples):
    p = tmp_path / "t.png"
    write_image(p, samples["astronaut"])
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        read_image(p)


def test_pixel_cap_refuses_before_decoding(tmp_path):
    p = tmp_path / "big.png"
    Image.new("L", (3000, 2000)).save(p)
    with pytest.raises(ImageReadError, match="exceeds the pixel cap"):
        read_image(p, max_pixels=5_000_000)
    assert read_image(p, max_pixels=6_000_000).shape == (2000, 3000)


def test_unsupported_dtype(tmp_path):
    p = tmp_path / "f.tif"
    Image.fromarray(np.zeros((4, 4), np.float32)).save(p)
    with pytest.raises(ImageReadError, match="floating-point"):
        read_image(p)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)
