"""bench/bench_bn_fold.py on the small network: exit 0 when the folded network agrees, 1 on a wrong fold."""
import logging

from bench import bench_bn_fold

SMALL = ["--res", "96", "--rounds", "1", "--net_config.block_type=BasicBlock", "--net_config.block_class=[1,1,1,1]",
         "--dataset_config.num_classes=5"]


def test_agreement_passes_on_the_fold_and_fails_on_a_wrong_one(caplog, capsys):
    caplog.set_level(logging.INFO, logger=bench_bn_fold.__name__)
    assert bench_bn_fold.main(SMALL) == 0
    assert "folded vs unfolded: heads differ by" in capsys.readouterr().out
    assert "scores distinct" in caplog.text

    caplog.clear()
    assert bench_bn_fold.main(SMALL + ["--corrupt"]) == 1
    assert "folded vs unfolded: FAILED: heads differ: hm by" in caplog.text
