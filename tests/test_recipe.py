"""Training recipes: TOML presets load, and every unknown key or bad value is refused by name."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tac_core.errors import InputError  # noqa: E402
from tac_torch.recipe import PRESETS, load_recipe, recipe_from_dict  # noqa: E402

BASE = {"recipe": {"name": "t", "batch_pairs": 2}, "spec": {"stages": 2, "out_h": 8, "out_w": 8},
        "stage": [{"name": "float", "steps": 3}, {"name": "qat", "steps": 2, "qat": True}]}


def _with(**changes):
    data = {k: (dict(v) if isinstance(v, dict) else [dict(s) for s in v]) for k, v in BASE.items()}
    for path, value in changes.items():
        table, key = path.split("__")
        (data["stage"][0] if table == "stage" else data[table])[key] = value
    return data


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load(name):
    recipe = load_recipe(name)
    assert recipe.total_steps > 0 and recipe.stages[-1].qat
    assert recipe.renderer_spec()["latent_dim"] > 0
    assert recipe.fingerprint() == load_recipe(name).fingerprint()


def test_recipe_from_file_and_fingerprint(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[recipe]\nseed = 3\n[spec]\nstages = 2\nout_h = 8\nout_w = 8\n'
                    '[[stage]]\nname = "a"\nsteps = 4\nschedule = "cosine"\nwarmup = 1\n')
    recipe = load_recipe(path)
    assert recipe.name == "mine" and recipe.seed == 3 and recipe.total_steps == 4
    assert recipe.stage_at(3)[2] == 3 and recipe.stages[0].lr_factor(0) == 1.0
    other = recipe_from_dict({**_with(), "recipe": {"name": "mine", "seed": 4}})
    assert other.fingerprint() != recipe.fingerprint()
    # an exact camera path is the default and leaves the fingerprint as it was; linear changes it
    exact = recipe_from_dict(_with(recipe__camera_path="exact"))
    linear = recipe_from_dict(_with(recipe__camera_path="linear"))
    assert exact.fingerprint() == recipe_from_dict(_with()).fingerprint() != linear.fingerprint()
    assert linear.camera_path == "linear"
    # so for the pairs' sampling: random (the default) as before the key, epochs changes it
    epochs = recipe_from_dict(_with(recipe__sampling="epochs"))
    assert recipe_from_dict(_with(recipe__sampling="random")).fingerprint() == recipe_from_dict(_with()).fingerprint()
    assert epochs.fingerprint() != recipe_from_dict(_with()).fingerprint() and epochs.sampling == "epochs"


@pytest.mark.parametrize("changes, words", [
    ({"recipe__batchsize": 2}, ["'batchsize'", "x.toml"]),
    ({"stage__lr": 0.1}, ["'lr'", "[[stage]] #1", "x.toml"]),
    ({"stage__steps": 0}, ["'steps'", ">= 1"]),
    ({"stage__qat": 1}, ["'qat'", "bool"]),
    ({"stage__ema_decay": 1.5}, ["'ema_decay'"]),
    ({"stage__schedule": "linear"}, ["'schedule'", "cosine"]),
    ({"recipe__camera_h": "big"}, ["'camera_h'", "int"]),
    ({"recipe__camera_path": "fast"}, ["'camera_path'", "exact, linear"]),
    ({"recipe__sampling": "even"}, ["'sampling'", "random, epochs"]),
    ({"spec__width_9": 3}, ["[spec]", "width_9"]),
])
def test_bad_recipes_name_the_key_and_file(changes, words):
    with pytest.raises(InputError) as err:
        recipe_from_dict(_with(**changes), "x.toml")
    assert all(w in str(err.value) for w in words), str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_recipe(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[recipe\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_recipe(bad)
    with pytest.raises(InputError, match=r"x.toml: \[recipe\] must be a table"):
        recipe_from_dict({"recipe": 3, "stage": [{"name": "a", "steps": 1}]}, "x.toml")
    with pytest.raises(InputError, match="unknown table 'stages'"):
        recipe_from_dict({"stages": []}, "x.toml")
    with pytest.raises(InputError, match="at least one"):
        recipe_from_dict({"recipe": {"name": "t"}}, "x.toml")
    with pytest.raises(InputError, match="unique"):
        recipe_from_dict({"stage": [{"name": "a", "steps": 1}, {"name": "a", "steps": 1}]}, "x.toml")


def test_the_pose_field_table_is_checked_and_outside_the_training_fingerprint():
    assert load_recipe("demo").pose_field.enabled
    for table, words in (({"iters": 3}, r"x.toml: unknown key 'iters' in \[pose_field\]"),
                         ({"lr": "fast"}, r"x.toml: \[pose_field\] lr"),
                         ({"batch_pairs": 0}, r"x.toml: \[pose_field\] batch_pairs"),
                         (3, r"x.toml: \[pose_field\] must be a table")):
        with pytest.raises(InputError, match=words) as err:
            recipe_from_dict({**_with(), "pose_field": table}, "x.toml")
        assert "\n" not in str(err.value)
    off = recipe_from_dict({**_with(), "pose_field": {"enabled": False, "iterations": 5}}, "x.toml")
    assert not off.pose_field.enabled and off.pose_field.iterations == 5
    assert off.fingerprint() == recipe_from_dict(_with(), "x.toml").fingerprint()


def test_a_recipe_with_a_base_changes_only_what_it_names(tmp_path):
    """``base``: tables merge key by key, lists replace, the name is the file's; bases chain; loops are refused."""
    from tac_torch.mask_warp_train import config_from_dict, load_config

    contest = load_config("contest")
    short = tmp_path / "short.toml"
    short.write_text('base = "contest"\n[train]\nfloat_steps = 10\n[maps]\nsteer_rounds = 1\n')
    got = load_config(short)
    assert (got.float_steps, got.maps.steer_rounds, got.name) == (10, 1, "short")
    assert (got.qat_steps, got.lr, got.spec, got.maps.steer_flips) == \
        (contest.qat_steps, contest.lr, contest.spec, contest.maps.steer_flips)
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.toml"          # a path base is relative to the file naming it
    child.write_text('base = "../short.toml"\n[train]\nname = "kid"\nqat_steps = 4\n')
    kid = load_config(child)
    assert (kid.name, kid.float_steps, kid.qat_steps, kid.maps.steer_rounds) == ("kid", 10, 4, 1)

    hnerv = tmp_path / "h.toml"                      # an array of tables is replaced whole
    hnerv.write_text('base = "demo"\n[recipe]\nseed = 7\n[[stage]]\nname = "only"\nsteps = 3\n')
    recipe = load_recipe(hnerv)
    assert recipe.seed == 7 and [s.name for s in recipe.stages] == ["only"] and recipe.spec == load_recipe("demo").spec

    with pytest.raises(InputError, match=r"x.toml: \[train\] must be a table"):
        config_from_dict({"train": 3}, "x.toml")
    loop = tmp_path / "loop.toml"
    loop.write_text('base = "loop.toml"\n')
    for text, words in (('base = "loop.toml"\n', "loop"),
                        ('base = "nowhere.toml"\n', "loop.toml: its base .*nowhere.toml: recipe file not found"),
                        ("base = 3\n", "base must be a preset name")):
        loop.write_text(text)
        with pytest.raises(InputError, match=words):
            load_recipe(loop)
