import dataclasses

import pytest

from xraybench.cases import PROFILES, CaseError, apply_profile, load_cases, select

HEADER = """
suite = "hw3"
[tasks]
A = "task a"
[defaults.train]
epochs = 3
"""


def one_case(body: str) -> str:
    return HEADER + '\n[[case]]\nid = "hw3-x"\ntask = "A"\ntitle = "x"\nmodel = { name = "hw3_cnn" }\n' + body


def error_of(write_cases, text: str) -> str:
    path = write_cases(text)
    with pytest.raises(CaseError) as info:
        load_cases([path])
    message = str(info.value)
    assert str(path) in message
    return message


def test_builtin_cases_load_and_cover_hw3():
    cases, suites = load_cases()
    ids = [c.id for c in cases]
    assert {"hw3-a-cnn", "hw3-a-cnn-dropout", "hw3-b-mlp", "hw3-c-gap", "hw3-c-gap-wide"} <= set(ids)
    assert all(i.startswith(c.suite) for i, c in zip(ids, cases))
    assert set(suites["hw3"].tasks) == {"A", "B", "C"}
    dropout = next(c for c in cases if c.id == "hw3-a-cnn-dropout")
    assert dropout.model.options == {"dropout": 0.6}
    assert dropout.train.scheduler_options == {"step_size": 10, "gamma": 0.1}  # file defaults merged in


def test_misspelt_field_names_case_and_suggests(write_cases):
    message = error_of(write_cases, one_case("[case.train]\nepoch = 3\n"))
    assert "'hw3-x'" in message and "'train.epoch'" in message and "did you mean 'epochs'" in message


def test_misspelt_top_level_field(write_cases):
    message = error_of(write_cases, one_case('titel = "y"\n'))
    assert "'titel'" in message and "did you mean 'title'" in message


def test_wrong_type(write_cases):
    message = error_of(write_cases, one_case('[case.train]\nbatch_size = "32"\n'))
    assert "'train.batch_size'" in message and "must be an integer" in message


def test_unknown_model_suggests(write_cases):
    text = one_case("").replace('name = "hw3_cnn"', 'name = "hw3_cn"')
    message = error_of(write_cases, text)
    assert "unknown model 'hw3_cn'" in message and "did you mean 'hw3_cnn'" in message


def test_unknown_model_option(write_cases):
    text = one_case("").replace('{ name = "hw3_cnn" }', '{ name = "hw3_cnn", options = { dropuot = 0.5 } }')
    message = error_of(write_cases, text)
    assert "'model.options.dropuot'" in message and "did you mean 'dropout'" in message


def test_duplicate_id_names_both_files(write_cases):
    first = write_cases(one_case(""), "a.toml")
    second = write_cases(one_case(""), "b.toml")
    with pytest.raises(CaseError, match="duplicate id") as info:
        load_cases([first, second])
    assert str(first) in str(info.value) and str(second) in str(info.value)


@pytest.mark.parametrize("body, field, words", [
    ("[case.train]\nlr = -0.1\n", "train.lr", "must be positive"),
    ("[case.train]\nepochs = 0\n", "train.epochs", "at least 1"),
    ('[case.train]\noptimizer = "adamm"\n', "train.optimizer", "did you mean 'adam'"),
    ('[case.train]\nscheduler = "step"\nscheduler_options = { step = 3 }\n', "train.scheduler_options.step",
     "did you mean 'step_size'"),
    ('[case.data]\naugment = ["hflp"]\n', "data.augment[0]", "did you mean 'hflip'"),
    ('task = "Z"\n', "task", "unknown task"),
    ('compare = ["hw3-nope"]\n', "compare", "unknown case id"),
])
def test_value_errors(write_cases, body, field, words):
    text = one_case(body)
    if body.startswith("task"):
        text = text.replace('task = "A"\n', "", 1)
    message = error_of(write_cases, text)
    assert f"'{field}'" in message and words in message


def test_id_must_start_with_suite(write_cases):
    message = error_of(write_cases, one_case("").replace('id = "hw3-x"', 'id = "hw4-x"'))
    assert "must start with the suite name 'hw3'" in message


def test_pattern_matching_nothing_lists_ids():
    cases, _ = load_cases()
    with pytest.raises(CaseError, match="hw3-a-cnn"):
        select(cases, ["nothing*"])
    assert [c.id for c in select(cases, ["hw3-c*"])] == ["hw3-c-gap", "hw3-c-gap-wide"]


def test_profiles_shrink_without_editing_cases():
    case = next(c for c in load_cases()[0] if c.id == "hw3-a-cnn")
    smoke = apply_profile(case, PROFILES["smoke"])
    assert (smoke.data.image_size, smoke.train.epochs) == (32, 2)
    assert apply_profile(case, PROFILES["full"]) == case
    assert smoke.config_hash != case.config_hash


def test_hash_is_stable_and_tracks_the_configuration():
    case = next(c for c in load_cases()[0] if c.id == "hw3-a-cnn")
    again = next(c for c in load_cases()[0] if c.id == "hw3-a-cnn")
    assert case.config_hash == again.config_hash
    assert dataclasses.replace(case, title="renamed").config_hash == case.config_hash
    edited = dataclasses.replace(case, train=dataclasses.replace(case.train, lr=1e-4))
    assert edited.config_hash != case.config_hash
