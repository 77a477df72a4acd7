"""tools/detect_images.py: a folder of images without annotations -> drawn PNGs and a results json."""
import json
import logging
import os
import shutil

from agreement import NO_SOFT_NMS, PredictionLog, assert_records_agree, assert_runs_agree
from conftest import make_config
from data_helpers import fifo_released_after, huge_png
from eval_helpers import FIXED, SMALL, argv, file_names, small_checkpoint
from src.infer import folder as folder_module
from src.infer.detector import build_eval_network
from tools import detect_images


def test_folder_detection_with_names_from_an_annotation_file(synthetic_coco, tmp_path, capsys):
    """Bad input: a photo folder also holding an undecodable file, a FIFO, a folder named like an image and a 20000x20000 PNG | each skipped with a warning naming it; drawings and results.json of the others."""
    folder = tmp_path / "photos"
    folder.mkdir()
    picked = sorted(os.listdir(synthetic_coco.val_images))[:3]
    for name in picked:
        shutil.copy(os.path.join(synthetic_coco.val_images, name), folder / name)
    (folder / "broken.jpg").write_bytes(b"not a picture")
    os.mkfifo(folder / "stalled.jpg")
    (folder / "album.jpg").mkdir()
    huge_png(folder / "huge.png", 20000, 20000)
    (folder / "notes.txt").write_text("ignored")
    ckpt = small_checkpoint(tmp_path / "small.ckpt")
    out = tmp_path / "out"
    options = dict(FIXED, device_target="CPU", image_dir=str(folder), load_checkpoint_path=ckpt,
                   save_result_dir=str(out), eval_ann_file=synthetic_coco.val_ann)
    options["eval_config.score_thresh"] = 0.05
    with fifo_released_after(folder / "stalled.jpg"):
        assert detect_images.main(argv(options)) == 0
    err = capsys.readouterr().err
    assert "skipped: cannot decode image" in err
    assert "skipped: %s is a FIFO (named pipe), not a regular file" % (folder / "stalled.jpg") in err
    assert "skipped: %s is a folder, not a regular file" % (folder / "album.jpg") in err
    assert "skipped: %s is 20000x20000 (400.0 megapixels), over dataset_config.max_image_pixels" % (
        folder / "huge.png") in err
    assert "3 images (4 skipped)" in err
    assert file_names(out) == [".lock", "images", "results.json"]  # .lock: the FolderLock of the run
    assert file_names(out / "images") == sorted(os.path.splitext(n)[0] + ".png" for n in picked)
    results = json.loads((out / "results.json").read_text())
    assert {r["file_name"] for r in results} == set(picked)
    doc = json.loads(open(synthetic_coco.val_ann).read())
    ids = {i["file_name"]: i["id"] for i in doc["images"]}
    names = {c["id"]: c["name"] for c in doc["categories"]}
    assert all(r["image_id"] == ids[r["file_name"]] and r["category_name"] == names[r["category_id"]]
               for r in results)
    assert set(results[0]) == {"file_name", "image_id", "category_id", "category_name", "bbox", "score"}


def test_photos_of_several_sizes_run_in_one_graph(synthetic_coco, tmp_path, caplog, monkeypatch):
    """keep_res over a folder of differently sized photos: one dynamic-shape graph, the detections of one
    static graph per size."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(os.listdir(synthetic_coco.val_images))[:3]:
        shutil.copy(os.path.join(synthetic_coco.val_images, name), folder / name)
    ckpt = small_checkpoint(tmp_path / "deformed.ckpt", randomise=True)
    results, logs = {}, {}
    for policy in ("auto", "never"):
        options = dict(SMALL, device_target="CPU", image_dir=str(folder), load_checkpoint_path=ckpt,
                       save_result_dir=str(tmp_path / policy), eval_ann_file=synthetic_coco.val_ann, **NO_SOFT_NMS,
                       **{"eval_config.keep_res": True, "eval_config.dynamic_shape": policy})
        caplog.clear()
        logs[policy] = PredictionLog().install(monkeypatch, folder_module)
        with caplog.at_level(logging.INFO):
            assert detect_images.main(argv(options)) == 0
        monkeypatch.undo()
        results[policy] = json.loads((tmp_path / policy / "results.json").read_text())
        if policy == "auto":
            assert "compiled one dynamic-shape graph" in caplog.text
    ties = assert_runs_agree(logs["auto"], logs["never"], build_eval_network(make_config(SMALL), 5, ckpt))
    assert_records_agree(results["auto"], results["never"], ties)


def test_coco_names_and_ids_without_an_annotation_file(tmp_path):
    from src.data.coco import COCO_CATEGORY_IDS, default_category_ids
    from src.model_utils.config import get_config
    names = get_config([]).dataset_config.coco_classes
    assert default_category_ids(80, names) == list(COCO_CATEGORY_IDS) and COCO_CATEGORY_IDS[-1] == 90
    assert default_category_ids(5, names[:5]) == [1, 2, 3, 4, 5]


def test_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = detect_images.main(argv(dict(FIXED, image_dir=str(tmp_path / "empty"), load_checkpoint_path="x.ckpt",
                                        save_result_dir=str(tmp_path / "out"))))
    assert code != 0 and "no images" in capsys.readouterr().err and not (tmp_path / "out").exists()
