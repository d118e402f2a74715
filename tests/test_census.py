"""The census (``python -m mnist_gen.cli.census``): it reads the files the sets render, counts
what a change fixed and broke, and one bad file or setting costs one sentence, not the census."""

from __future__ import annotations

import json

import pytest

from mnist_gen.cli import census


def test_a_census_file_is_byte_for_byte_the_file_its_set_renders(tmp_path):
    """Sampled digits are rendered as ``build_variant`` renders them: the seeding, a row's
    neighbours (gathered over the whole source) and a JPEG's quality included."""
    from mnist_gen.evalsets.framing import build_variant

    sets = {}
    for name, i, label, item_id, *_ in census.sample_sets(600, sources=("uci",)):
        sets.setdefault(name, []).append((i, label, item_id))
    assert sorted(i for i, *_ in sets["check_uci_row"] + sets.get("check_uci_row_inv", [])) == [0, 600, 1200]
    assert "uci_jpeg" in sets and "uci_jpeg_inv" in sets  # every other sample inverted
    files = {key: path for key, _, path in census.write_files(600, tmp_path / "census", sources=("uci",))}
    for name, variant, inverted in (("check_uci_row_inv", "row", True), ("uci_jpeg", "jpeg", False)):
        folder = build_variant("uci", variant, inverted, tmp_path / "data")
        for _, label, item_id in sets[name]:
            rendered = next(folder.glob(f"{label}/{item_id}.*"))
            assert files[f"{name}/{label}/{rendered.name}"].read_bytes() == rendered.read_bytes()


def test_compare_names_every_changed_answer_and_counts_the_right_ones():
    before = {"a": [1, 1], "b": [2, 7], "c": [3, "no digit: noise"], "d": [4, 4], "gone": [5, 5]}
    after = {"a": [1, 7], "b": [2, 2], "c": [3, 8], "d": [4, 4], "new": [6, 6]}
    c = census.compare(before, after)
    assert (c["files"], c["right_before"], c["right_after"], c["fixed"], c["broken"]) == (4, 2, 2, 1, 1)
    assert [ch["file"] for ch in c["changed"]] == ["a", "b", "c"]


def test_an_unreadable_file_is_answered_with_its_reason_and_the_others_are_read(tmp_path):
    from PIL import Image, ImageDraw

    im = Image.new("L", (100, 120), 230)
    ImageDraw.Draw(im).line([(50, 15), (50, 105)], fill=20, width=9)
    im.save(tmp_path / "one.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    Image.new("L", (60, 60), 200).save(tmp_path / "blank.png")
    answers = census.read_files([("s/1/one.png", 1, tmp_path / "one.png"), ("s/3/bad.png", 3, tmp_path / "bad.png"),
                                 ("s/5/blank.png", 5, tmp_path / "blank.png")], "default", {})
    assert answers["s/1/one.png"] == [1, 1]
    assert answers["s/3/bad.png"][1].startswith("no digit: ") and answers["s/5/blank.png"][1].startswith("no digit")
    json.dumps(answers, allow_nan=False)


@pytest.mark.parametrize("args, said", [(["--preprocess", "stroke_gapp=0"], "Unknown preprocess setting"),
                                        (["--preprocess", "stroke_gap"], "takes key=value"),
                                        (["--every", "0"], "--every must be 1 or more")])
def test_a_wrong_option_is_one_sentence_before_any_work(args, said, capsys):
    assert census.main(args) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1


def test_an_against_file_that_is_not_a_census_is_one_sentence(tmp_path, capsys):
    (tmp_path / "x.json").write_text('{"rows": []}')
    assert census.main(["--against", str(tmp_path / "x.json")]) == 2
    assert "is not a census.json" in capsys.readouterr().err


def test_a_source_whose_data_is_not_here_is_left_out_with_one_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_GEN_SHARED", str(tmp_path / "no_shared_data"))
    assert "USPS test file" in census.unreadable("usps") and "no_shared_data" in census.unreadable("photos")
    assert census.unreadable("uci") is None  # bundled with scikit-learn
    assert census.main(["--sources", "usps", "photos"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["census", "census", "error"]
    assert err[-1].startswith("error: None of the census's sources can be read here")
