"""Framing-robustness sets: each framing renders what it says, and a digit is read the same
however it is framed or stored (one pipeline for every input)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mnist_gen.evalsets import describe_sets, expand_set_names, load_eval_set
from mnist_gen.evalsets.framing import SIZES, SOURCES, VARIANTS
from mnist_gen.evalsets.renders import render
from mnist_gen.evalsets.scans import default_usps_path, read_usps
from mnist_gen.preprocess import normalize_digit, to_mnist
from mnist_gen.preprocess.normalize import stroke_width


def _digit() -> tuple[np.ndarray, tuple]:
    """A dark 7 on light paper, 120×100, with its ink box."""
    from PIL import ImageDraw

    im = Image.new("L", (100, 120), 230)
    ImageDraw.Draw(im).line([(20, 20), (80, 20), (40, 100)], fill=20, width=9)
    g = np.asarray(im)
    ys, xs = np.nonzero(g < 128)
    return g, (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)


def test_each_framing_renders_what_it_names():
    g, box = _digit()
    rng = np.random.default_rng(0)
    out = {v: render(g, box, v, np.random.default_rng(0), [(g, box), (g, box)])[0] for v in VARIANTS}
    h, w = box[2] - box[0], box[3] - box[1]
    assert out["tight0"].shape == (h, w) and out["tight2"].shape == (h + 4, w + 4)
    assert out["tight0"][0].min() < 128 and out["tight0"][:, 0].min() < 128  # strokes touch the frame
    area = out["margin"].size
    assert 0.03 < h * w / area < 0.07  # the digit's box covers about 5 % of the image
    for side in (16, 28, 64):
        assert max(out[f"px{side}"].shape) == side
    assert set(np.unique(out["stretch_bin16"])) <= {0, 255} and out["stretch_bin16"].shape == (16, 16)
    for name, paper in (("grey_lowc", 150), ("dark_lowc", 60)):
        img = out[name].astype(float)
        assert abs(np.median(img) - paper) < 6 and 15 < paper - np.percentile(img, 1) < 50
    assert render(g, box, "jpeg", rng)[1] == "JPEG"
    # The later checks: several changes at once.
    assert max(out["dark_jpeg32"].shape) == 32 and render(g, box, "dark_jpeg32", rng)[1] == "JPEG"
    paper = out["uneven_tight0"][out["tight0"] > 200]  # where the crop was bare paper
    assert out["uneven_tight0"].shape == (h, w) and np.ptp(paper) > 60  # lit from one side, 120 → 210
    broken = out["broken1"] < 128
    from scipy import ndimage as ndi

    assert ndi.label(broken, structure=np.ones((3, 3)))[1] >= 2  # cut in two
    assert not broken[0].any() and broken[1].any()  # cropped to its ink with a 1 px margin
    squared = out["squared"].astype(float)
    assert h < 120 and 120 <= squared.shape[0] <= 2 * 120  # enlarged to 120 px, cropped with a margin
    pen = squared.min()
    paper = np.median(squared)
    rows = np.median(squared, axis=1)  # a rule is a row darker than the paper all across
    assert ((rows < paper - 5) & (rows > pen + 20)).any()  # lighter than the pen
    lit = out["uneven_photo"]
    assert 40 <= max(lit.shape) <= 160 and abs(lit.shape[0] / lit.shape[1] - h / w) < 0.1  # the tight crop, enlarged
    assert set(np.unique(out["bold_bin16"])) <= {0, 255} and out["bold_bin16"].shape == (16, 16)
    assert max(out["bold_px16"].shape) == 16
    row = out["row"] < 128  # the 7 between two more, a piece of each inside the crop
    assert row.shape[1] > w and row[:, 0].any() and row[:, -1].any()
    assert ndi.label(row, structure=np.ones((3, 3)))[1] >= 3  # paper between the pieces and the digit
    boxed = out["boxed"].astype(float)
    paper, k = np.median(boxed), max(1, boxed.shape[0] // 5)
    for lines in (np.median(boxed, axis=1), np.median(boxed, axis=0)):  # the box: a dark line all across
        assert (lines[:k] < paper - 15).any() and (lines[-k:] < paper - 15).any()  # near each border
        assert not (lines[k:-k] < paper - 15).any()  # and none through the digit
    shadow = out["shadow"].astype(float)
    paper = shadow[shadow > 60]  # the pen is 20, at most 20 under any light; the paper 230 × 0.4–1
    assert shadow.shape[0] > h and 0.15 < (paper < 0.9 * 230).mean() < 0.65  # 20–60 % in the shade
    assert np.percentile(paper, 5) < 0.8 * np.percentile(paper, 95)  # light falling to 40–75 %
    circled = out["circled"] < 128  # the 7 and a ring around it, paper between
    lab, n = ndi.label(circled, structure=np.ones((3, 3)))
    middle = circled[circled.shape[0] // 2]
    ring = lab == lab[circled.shape[0] // 2, np.argmax(middle)]  # the first ink across the middle
    assert n == 2 and circled.shape[0] > 1.2 * h
    assert ndi.binary_fill_holes(ring).sum() > 3 * ring.sum()  # a closed curve around the digit
    opened = out["circled_open"] < 128  # the 7 in a ring that does not close
    lab, n = ndi.label(opened, structure=np.ones((3, 3)))
    ring = lab == 1 + int(np.argmax(ndi.sum(opened, lab, range(1, n + 1))))
    assert n >= 2 and ndi.binary_fill_holes(ring).sum() < 1.1 * ring.sum()  # no hole: left open
    (ys, xs), (y7, x7) = np.nonzero(ring), np.nonzero(opened & ~ring)
    assert ys.min() < y7.min() and ys.max() > y7.max() and xs.min() < x7.min() and xs.max() > x7.max()  # around it
    thin = out["thin_squared"].astype(float)
    pen = thin < (thin.min() + np.median(thin)) / 2  # the pen's strokes; the rules are lighter
    ys = np.nonzero(pen.any(axis=1))[0]
    assert 0.01 < stroke_width(pen) / (ys[-1] - ys[0] + 1) < 0.05  # a fine pen: 1.5–4 % of the height
    rows = np.median(thin, axis=1)
    assert ((rows < np.median(thin) - 5) & (rows > thin.min() + 20)).any()  # squared paper, lighter than the pen
    dim = out["lowlight"].astype(float)
    assert 80 <= dim.shape[0] <= 2 * 300 and np.median(dim) < 160  # enlarged, on under-exposed paper
    flat = dim[: dim.shape[0] // 20]  # a strip of the margin: paper only, its noise 8–25 levels
    assert 5 < float(np.std(flat - ndi.gaussian_filter(flat, 3))) < 30
    phone = out["phone_tight"].astype(float)  # the tight crop, enlarged, on paper of any level
    assert 100 <= max(phone.shape) <= 310 and abs(phone.shape[0] / phone.shape[1] - h / w) < 0.15
    paper = np.percentile(phone, 90)
    inked = phone < paper - 0.1 * paper  # the pen: 15–50 % darker than its paper
    edge = max(2, round(0.05 * max(phone.shape)))  # strokes reach every side of the crop
    assert inked[:edge].any() and inked[-edge:].any() and inked[:, :edge].any() and inked[:, -edge:].any()
    assert 0.4 * paper < np.percentile(phone, 1) < 0.9 * paper
    blurred = out["defocus"].astype(float)  # the tight crop, enlarged, darker towards its corners
    assert 60 <= max(blurred.shape) <= 410 and abs(blurred.shape[0] / blurred.shape[1] - h / w) < 0.15
    paper = np.percentile(blurred, 90)
    assert 0.35 * paper < np.percentile(blurred, 1) < 0.95 * paper  # the pen 18–45 % darker, under darker corners
    pencil = out["pencil"].astype(float)  # enlarged, with a margin, 40–80 levels darker in grains
    paper = np.median(pencil)
    assert 80 <= pencil.shape[0] <= 2 * 300 and 30 < paper - pencil.min() < 100
    grains = pencil < paper - 20
    assert grains.sum() < 0.9 * ndi.binary_closing(grains, np.ones((5, 5))).sum()  # paper between the grains
    lamp = out["lamp"].astype(float)  # enlarged, with a margin, lit from one point above the page
    assert 70 <= lamp.shape[0] <= 2.2 * 600
    light = ndi.median_filter(lamp, size=max(3, lamp.shape[0] // 10))  # the paper's light, strokes removed
    corners = [light[0, 0], light[0, -1], light[-1, 0], light[-1, -1]]
    assert 100 * 0.06 * 0.9 < min(corners) < 0.85 * light.max() <= 240  # a far corner in the lamp's fall-off
    under = out["underlined"] < 128  # the 7 with a line under it at least as wide as it is
    ys, xs = np.nonzero(under)
    low = under[ys.max() - int(0.15 * (ys.max() - ys.min())) :]  # the lowest 15 % of the ink: the line
    span = np.nonzero(low.any(axis=0))[0]
    assert span[-1] - span[0] + 1 >= 0.9 * w and xs.max() - xs.min() + 1 >= w
    assert ys.max() - ys.min() + 1 > h  # below the digit, not through it



def test_a_smooth_stretch_is_a_16px_scan_not_the_sources_pixels_repeated():
    # an 8×8 digit (UCI's size) touching its borders, stretched to 16×16: straight from the
    # source that is its own grid thresholded, in 2×2 blocks; from the source enlarged first
    # it has detail of its own at 16 px, as a scan at scanner resolution stretched would
    g = np.full((8, 8), 255, np.uint8)
    g[0, :] = 0
    for y in range(1, 8):
        g[y, 7 - y] = 0
        g[y, min(7, 8 - y)] = 90
    box = (0, 0, 8, 8)
    out = {v: render(g, box, v, np.random.default_rng(0))[0] for v in ("stretch_bin16", "smooth_bin16")}

    def blocks(a):
        return np.array_equal(a, np.kron(a[::2, ::2], np.ones((2, 2), a.dtype)))

    for a in out.values():
        assert a.shape == (16, 16) and set(np.unique(a)) <= {0, 255}
    assert blocks(out["stretch_bin16"]) and not blocks(out["smooth_bin16"])
    assert ((out["smooth_bin16"] < 128) == (out["stretch_bin16"] < 128)).mean() > 0.8  # the same digit


def test_the_styled_check_is_mnist_tests_1s_7s_and_9s_each_with_its_stroke_drawn_on(mnist):
    """``check_styled_*``: MNIST *test* digits (the styles are drawn on training digits only in
    training), only the classes with a continental style, each changed by its new stroke."""
    from mnist_gen.evalsets.framing import _styled

    x, y = mnist["x_test"][:400], mnist["y_test"][:400]
    styled, labels, index = _styled(x, y)
    assert set(np.unique(labels)) == {1, 7, 9} and np.array_equal(labels, y[index])
    assert len(labels) > 0.7 * np.isin(y, [1, 7, 9]).sum()  # most can be styled
    assert styled.min() >= 0 and styled.max() <= 1
    for s, i in zip(styled, index, strict=True):
        assert np.abs(s - x[i] / 255.0).max() > 0.5, i  # changed: a stroke drawn or a tail redrawn, re-centred
    ones = labels == 1  # a flag or a foot: the 1 is wider than its bare stroke
    cols = lambda a: (a > 0.5).any(axis=-2).sum(axis=-1)  # noqa: E731
    assert (cols(styled[ones]) > cols(x[index[ones]] / 255.0)).mean() > 0.9
    assert len(_styled(mnist["x_test"], mnist["y_test"])[1]) == SIZES["styled"]  # the size the listing gives


def test_a_bold_pen_is_a_fifth_to_a_quarter_of_the_digit_and_never_thinner():
    from mnist_gen.evalsets.renders import _in_bold_pen

    g, box = _digit()  # pen 9 px in a 80 px tall 7: 11 %
    for seed in range(5):
        bold, _ = _in_bold_pen(g, box, np.random.default_rng(seed))
        pen = stroke_width(bold < 128) / 40  # of the digit's height before the pen grew (enlarged to 40 px)
        assert 0.15 < pen < 0.28, pen  # 18-26 %, within the width estimate's error at the 7's corners
    thick = np.full((120, 100), 230, np.uint8)
    thick[20:100, 35:65] = 20  # a 1 whose pen is already 30 px of 80
    bold, _ = _in_bold_pen(thick, (20, 35, 100, 65), np.random.default_rng(0))
    assert abs((bold < 128).sum() / (15 * 40) - 1) < 0.1  # left as it was, enlarged to 40 px tall: 15 × 40 px


def test_the_later_checks_stay_out_of_the_framing_table():
    from mnist_gen.evalsets.framing import CHECKS, FRAMING_SETS

    names = {r["name"] for r in describe_sets()}
    checks = {f"check_{s}_{v}{inv}" for s, vs in CHECKS.items() for v in vs for inv in ("", "_inv")}
    assert checks <= names and not checks & FRAMING_SETS
    assert not any(n.startswith("photos_") for n in checks)  # nor matched by photos_*: not in the model choice


def test_every_framing_set_is_registered_in_both_polarities():
    names = {r["name"] for r in describe_sets()}
    for source in ("usps", "uci", "mnist"):
        assert {f"{source}_native", f"{source}_native_inv", f"{source}_tight0", f"{source}_tight0_inv"} <= names
    assert {f"photos_{v}" for v in SOURCES["photos"][0]} | {f"photos_{v}_inv" for v in SOURCES["photos"][0]} <= names
    assert expand_set_names(["usps_tight*"]) == ["usps_tight0", "usps_tight0_inv"]


@pytest.mark.parametrize("variant", ["photos_tight0", "photos_tight0_inv", "photos_px16", "photos_dark_lowc_inv"])
def test_no_photo_is_lost_in_any_framing(tmp_path, variant):
    """The study's 29 photos framed tightly, tiny, inverted, on dark paper: a digit found in each."""
    s = load_eval_set(variant, data_dir=tmp_path)
    assert len(s) == 29 and not s.skipped, s.skipped


def test_a_scan_reads_the_same_as_a_file_and_as_an_array():
    """USPS digits: the stored array through to_mnist, the same digit written as a PNG in either
    polarity, and the old direct box-and-centre path give nearly the same 28×28."""
    ink, _ = read_usps(default_usps_path())
    corr_file, corr_box = [], []
    for a in ink[::40]:
        arr = to_mnist(a).digit
        dark_on_white = to_mnist(Image.fromarray(np.round(255 * (1 - a)).astype(np.uint8))).digit
        light_on_black = to_mnist(Image.fromarray(np.round(255 * a).astype(np.uint8))).digit
        assert arr is not None and dark_on_white is not None and light_on_black is not None
        # polarity makes no difference (but for rounding 255·(1 - a) against 255·a)
        assert np.abs(dark_on_white.astype(int) - light_on_black).max() <= 3
        corr_file.append(np.corrcoef(arr.ravel(), dark_on_white.ravel())[0, 1])
        corr_box.append(np.corrcoef(arr.ravel(), normalize_digit(a).ravel())[0, 1])
    assert np.median(corr_file) > 0.98 and np.median(corr_box) > 0.9, (np.median(corr_file), np.median(corr_box))


def test_framing_and_style_tables():
    from mnist_gen.reporting.tables import framing_table, style_table

    stat = {"mean": 0.9, "std": 0.01, "n": 3, "n_items": 2007}
    rows = [{"model": "cnn", "recipe": "robust", "seeds": [0, 1, 2],
             "eval_sets": {"usps": stat, "usps_tight0": stat, "usps_tight0_inv": stat, "mnist_test": stat,
                           "seed_photos": {"mean": 1.0, "std": 0.0, "n": 3, "n_items": 29}}}]
    table = framing_table(rows)
    lines = table.splitlines()
    assert lines[0] == "| set | cnn (robust, 3 seeds) |"
    assert [ln.split(" | ")[0] for ln in lines[2:]] == ["| seed_photos", "| usps", "| usps_tight0", "| usps_tight0_inv"]
    assert "| usps | 90.0 ± 1.0 |" in table and "| seed_photos | 29/29 ± 0 |" in table
    cm = np.zeros((10, 10), int)
    np.fill_diagonal(cm, 10)
    cm[1, 7] = 5  # five flagged 1s read as 7
    runs = [{"eval_sets": {"seed_photos": {"report": {"confusion_matrix": cm.tolist()}},
                           "mnist_test": {"report": {"confusion_matrix": (cm * 100).tolist()}}}}]
    styles = style_table({"before": runs}, ["seed_photos", "usps*"]).splitlines()
    assert styles[2].startswith("| before | 66.7 % | 100.0 % | 100.0 % | 100.0 % | 5 | 0 ")


def test_style_groups_tell_the_style_augmentation_apart():
    from mnist_gen.reporting.tables import style_groups

    def run(model, recipe, augment):
        return {"model": model, "recipe": recipe, "config": {"augment": augment}, "eval_sets": {}}

    runs = [run("cnn", "robust", {"name": "robust", "styles": {"p": 0.3}}), run("cnn", "robust", {"name": "robust"}),
            run("cnn", "robust", {"name": "robust", "styles": {"p": 0.0}}), run("mlp", "study", None)]
    groups = style_groups(runs)
    assert sorted(groups) == ["cnn (robust)", "cnn (robust, styles)", "mlp (study)"]
    assert len(groups["cnn (robust)"]) == 2


def test_style_table_sums_the_users_paths_only():
    """The study's whole-image resize (``*_naive``) and the arrays told their crop (``*_arrays``) are
    references, not what a file goes through: the style table leaves them out."""
    from mnist_gen.reporting.tables import REAL_SETS, style_table

    def cm(sevens_as_ones):
        m = np.zeros((10, 10), int)
        m[7, 7], m[7, 1] = 10 - sevens_as_ones, sevens_as_ones
        return {"report": {"confusion_matrix": m.tolist()}}

    run = {"model": "cnn", "eval_sets": {"usps": cm(1), "usps_tight0": cm(2), "usps_naive": cm(9), "usps_arrays": cm(5),
                                         "mnist_test": cm(7)}}
    row = style_table({"cnn": [run]}, REAL_SETS).splitlines()[2].split(" | ")
    assert row[3] == "85.0 %"  # recall of 7 over usps and usps_tight0: 17 of 20
    assert row[6] == "3"       # 7→1


def test_framing_summary_sets_files_beside_arrays_and_the_framing_range():
    from mnist_gen.reporting.tables import framing_summary

    def stat(acc, items):
        return {"mean": acc, "std": 0.0, "n": 1, "n_items": items}

    row = {"model": "cnn", "recipe": "robust", "seeds": [0], "test_accuracy": {"mean": 0.99},
           "eval_sets": {"seed_photos": stat(1.0, 29), "photos_px16": stat(28 / 29, 29), "photos_tight0": stat(1.0, 29),
                         "usps": stat(0.97, 2007), "usps_arrays": stat(0.975, 2007), "usps_tight0": stat(0.95, 2007),
                         "usps_margin_inv": stat(0.96, 2007)}}
    line = framing_summary([row]).splitlines()[2].split(" | ")
    assert line[3:9] == ["99.00", "29", "28–29/29", "97.00", "97.50", "95.0–96.0"]
    assert line[9:] == ["–", "–", "– |"]
    # Under the table, the pipeline versions that read its files, where the scores recorded them.
    assert "pipeline version" not in framing_summary([row])
    assert framing_summary([{**row, "pipeline_versions": [35, 36]}]).endswith("Files read by pipeline versions 35, 36.\n")


def _build_after(barrier, data_dir) -> None:
    from mnist_gen.evalsets.framing import build_variant

    barrier.wait(60)
    build_variant("uci", "native", False, data_dir)


def test_two_processes_rendering_one_framing_at_once_both_get_the_whole_folder(tmp_path):
    """Two evaluate.py (or two test workers) asking for the same unrendered set at once: neither
    writes into nor renames the other's half, both end with the complete folder; the halves killed runs left are swept."""
    import multiprocessing as mp

    from mnist_gen.evalsets.framing import variant_dir

    out = variant_dir("uci", "native", False, tmp_path)
    gone = _a_finished_pid()
    (out.parent / f"native.partial.{gone}" / "3").mkdir(parents=True)  # a killed run's half-rendered folder
    (out.parent / "native.partial" / "3").mkdir(parents=True)  # one left by a version without per-process folders
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_build_after, args=(barrier, tmp_path)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(list(out.rglob("*.png"))) == SIZES["uci"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["native"]  # no half-rendered folder left, the dead one's swept


def _a_finished_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
