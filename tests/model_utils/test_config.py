"""Configuration: yaml documents, typed overrides, choices and errors."""
import os

import pytest

from src.model_utils.config import ConfigError, check_range, get_config, load_yaml, DEFAULT_CONFIG_PATH


def test_defaults_follow_the_seed_tables():
    cfg = get_config([])
    assert cfg.epoch_size == 1 and cfg.train_steps == -1 and cfg.save_checkpoint_steps == 1000
    assert cfg.mindrecord_prefix == "coco_det.train.mind" and cfg.run_mode == "val"
    assert cfg.dataset_config.num_classes == 80 and cfg.dataset_config.max_objs == 128
    assert cfg.dataset_config.input_res_train == [512, 512] and cfg.dataset_config.output_res == [128, 128]
    assert cfg.dataset_config.input_res_test == [680, 680]
    assert cfg.net_config.block_class == [3, 4, 23, 3] and cfg.net_config.wh_weight == 0.1
    assert cfg.train_config.batch_size == 32 and cfg.train_config.loss_scale_value == 1024
    assert cfg.train_config.MultiDecay.multi_epochs == [270, 300]
    assert cfg.eval_config.K == 100 and cfg.eval_config.SOFT_NMS is True and cfg.eval_config.keep_res is True
    assert len(cfg.dataset_config.coco_classes) == 80 and len(cfg.eval_config.color_list) == 80


def test_every_option_has_help_and_choices_name_real_keys():
    values, helper, choices = load_yaml(DEFAULT_CONFIG_PATH)

    def walk(v, h, prefix=""):
        for key, value in v.items():
            assert key in h, "no help text for %s%s" % (prefix, key)
            if isinstance(value, dict):
                walk(value, h[key], prefix + key + ".")
    walk(values, helper)
    cfg = get_config([])
    for key, allowed in choices.items():
        assert cfg.get(key) is not None, "choices/range names an unknown key %s" % key
        if isinstance(allowed, str):
            check_range(key, cfg.get(key), allowed)  # the defaults lie in their ranges
        else:
            assert cfg.get(key) in allowed, key


@pytest.mark.parametrize("override, message", [
    ("train_config.batch_size=0", r"--train_config.batch_size=0 is out of range: allowed \[1, inf\)"),
    ("train_config.batch_size=-4", r"--train_config.batch_size=-4 is out of range"),
    ("dataset_config.max_objs=-1", r"--dataset_config.max_objs=-1 is out of range: allowed \[1, inf\)"),
    ("train_config.MultiDecay.learning_rate=-0.001", r"MultiDecay.learning_rate=-0.001 is out of range: allowed \(0"),
    ("train_steps=0", r"--train_steps=0 is out of range: allowed -1 or \[1, inf\)"),
    ("dataset_config.flip_prop=1.5", r"flip_prop=1.5 is out of range: allowed \[0, 1\]"),
    ("net_config.block_class=[1,0,1,1]", r"block_class=\[1, 0, 1, 1\] \(element 0\) is out of range"),
])
def test_numeric_values_out_of_range_fail_before_anything_runs(override, message):
    """Bad input: a numeric option out of its range (batch_size=0 or -4, max_objs=-1, a negative learning rate) | one line naming the key, the value and the allowed range, before anything runs."""
    with pytest.raises(ConfigError, match=message):
        get_config(["--" + override])


def test_ranges_are_checked_in_merged_yaml_and_shown_by_help(tmp_path, capsys):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("train_config:\n    batch_size: 0\n")
    with pytest.raises(ConfigError, match="batch_size=0 is out of range"):
        get_config(["--config_path=%s" % overlay])
    assert get_config(["--train_steps=-1", "--train_steps=5"]).train_steps == 5
    with pytest.raises(SystemExit):
        get_config(["--help"])
    assert "--train_config.batch_size=32  range [1, inf)" in capsys.readouterr().out


def test_overrides_top_level_nested_and_lists():
    cfg = get_config(["--device_target=CPU", "--net_config.block_class=[1,1,1,1]",
                      "--dataset_config.input_res_train=[256,256]", "--train_config.batch_size", "4",
                      "--distribute=true", "--train_config.PolyDecay.learning_rate=1e-3",
                      "--eval_config.multi_scales=[0.5,1]"])
    assert cfg.device_target == "CPU" and cfg.distribute is True
    assert cfg.net_config.block_class == [1, 1, 1, 1]
    assert cfg.train_config.batch_size == 4
    assert cfg.train_config.PolyDecay.learning_rate == pytest.approx(1e-3)
    assert cfg.eval_config.multi_scales == [0.5, 1.0] and isinstance(cfg.eval_config.multi_scales[1], float)
    # output_res follows input_res_train / down_ratio
    assert cfg.dataset_config.output_res == [64, 64]


@pytest.mark.parametrize("argv, message", [
    (["--epoch_sise=3"], "did you mean --epoch_size"),
    (["--train_config.batch_sise=3"], "did you mean --train_config.batch_size"),
    (["--device_target=TPU"], "not one of"),
    (["--train_config.batch_size=4.5"], "expects int"),
    (["--distribute=maybe"], "expects true or false"),
    (["--net_config.block_class=[1,1.5,1,1]"], "expects int"),
    (["--net_config=3"], "is a section"),
    (["--dataset_config.output_res=[10,10]"], "must equal input_res_train"),
    (["--dataset_config.input_res_train=[250,250]"], "multiples of 32"),
    (["stray"], "unexpected argument"),
    (["--config_path=/nonexistent/cfg.yaml"], "config file not found"),
])
def test_bad_options_name_the_key(argv, message):
    """Bad input: an unknown option, a value of the wrong type, a value not among the choices | one line naming the option, with the close matches or the expected type and choices."""
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        get_config(argv)


def test_partial_yaml_is_merged_and_checked(tmp_path):
    """Bad input: a configuration file with an unknown key or a wrong type | one line naming the file and the key."""
    good = tmp_path / "small.yaml"
    good.write_text("epoch_size: 3\nnet_config:\n    block_class: [2, 2, 2, 2]\n    block_type: BasicBlock\n")
    cfg = get_config(["--config_path=%s" % good, "--epoch_size=5"])
    assert cfg.epoch_size == 5 and cfg.net_config.block_type == "BasicBlock"
    assert cfg.train_config.batch_size == 32  # untouched defaults remain
    bad = tmp_path / "bad.yaml"
    bad.write_text("net_config:\n    blok_class: [1, 1, 1, 1]\n")
    with pytest.raises(ConfigError, match="unknown key net_config.blok_class.*block_class"):
        get_config(["--config_path=%s" % bad])
    wrong_type = tmp_path / "wrong.yaml"
    wrong_type.write_text("epoch_size: many\n")
    with pytest.raises(ConfigError, match="epoch_size"):
        get_config(["--config_path=%s" % wrong_type])


def test_original_numpy_array_text_is_parsed_without_eval(tmp_path):
    path = tmp_path / "orig.yaml"
    path.write_text("dataset_config:\n"
                    "    mean: np.array([0.1, 0.2, 0.3], dtype=np.float32).reshape(1, 1, 3)\n"
                    "    eig_val: np.array([1.0, 2.0, 3.0], dtype=np.float32)\n"
                    "    std: np.array([__import__('os').getcwd()])\n")
    with pytest.raises(ConfigError, match="std"):
        get_config(["--config_path=%s" % path])
    path.write_text("dataset_config:\n"
                    "    mean: np.array([0.1, 0.2, 0.3], dtype=np.float32).reshape(1, 1, 3)\n"
                    "    eig_val: np.array([1.0, 2.0, 3.0], dtype=np.float32)\n")
    cfg = get_config(["--config_path=%s" % path])
    assert cfg.dataset_config.mean == [0.1, 0.2, 0.3]
    assert cfg.dataset_config.eig_val == [1.0, 2.0, 3.0]


def test_help_lists_options_with_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        get_config(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--train_config.batch_size=32" in text and "{Ascend, GPU, CPU}" in text


def test_keys_of_the_original_configuration_stay_accepted(tmp_path, caplog):
    cfg = get_config(["--dataset_config.output_res=[128,128]", "--train_config.optimizer=Adam",
                      "--train_config.MultiDecay.eps=1e-8", "--net_config.dense_hp=false"])
    assert cfg.train_config.Adam.eps == pytest.approx(1e-8) and cfg.dataset_config.output_res == [128, 128]
    assert not hasattr(cfg.net_config, "dense_hp") and not hasattr(cfg.train_config, "optimizer")
    assert not hasattr(cfg.train_config.MultiDecay, "eps")
    assert "net_config.dense_hp=False: Ignored" in caplog.text
    with pytest.raises(ConfigError, match="train_config.optimizer=SGD is not available: Adam only"):
        get_config(["--train_config.optimizer=SGD"])
    with pytest.raises(ConfigError, match="expects true or false"):
        get_config(["--net_config.dense_hp=maybe"])
    # an original-style yaml: eps under the schedule, output_res and dense_hp spelled out
    seed_style = tmp_path / "seed.yaml"
    seed_style.write_text("dataset_config:\n    input_res_train: [256, 256]\n    output_res: [64, 64]\n"
                          "net_config:\n    dense_hp: True\n"
                          "train_config:\n    optimizer: Adam\n    PolyDecay:\n        eps: 0.001\n")
    cfg = get_config(["--config_path=%s" % seed_style])
    assert cfg.train_config.Adam.eps == pytest.approx(1e-3) and cfg.dataset_config.output_res == [64, 64]
    seed_style.write_text("dataset_config:\n    output_res: [64, 64]\n")
    with pytest.raises(ConfigError, match="must equal input_res_train"):
        get_config(["--config_path=%s" % seed_style])


def test_several_config_files_merge_in_order(tmp_path):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("epoch_size: 330\nsave_checkpoint_steps: 3000\n")
    second.write_text("epoch_size: 7\n")
    cfg = get_config(["--config_path=%s" % first, "--config_path=%s" % second])
    assert (cfg.epoch_size, cfg.save_checkpoint_steps) == (7, 3000) and cfg.config_path == str(second)


def test_help_states_the_accepted_original_keys(capsys):
    with pytest.raises(SystemExit):
        get_config(["--help"])
    text = capsys.readouterr().out
    accepted = text[text.index("accepted from the original"):]
    for key in ("output_res", "dense_hp", "optimizer", "PolyDecay.eps", "MultiDecay.eps"):
        assert key in accepted


def test_recipe_config_sets_the_published_training_length():
    recipe = get_config(["--config_path=%s" % os.path.join(os.path.dirname(DEFAULT_CONFIG_PATH),
                                                           "coco_recipe_config.yaml")])
    assert recipe.epoch_size == 330 and get_config([]).epoch_size == 1
    assert recipe.train_config.batch_size == 32 and recipe.train_config.MultiDecay.multi_epochs == [270, 300]
