import dataclasses

import pytest
import torch
from conftest import own_cases

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


@pytest.mark.parametrize(
    "body, field, words",
    [
        ("[case.train]\nlr = -0.1\n", "train.lr", "must be positive"),
        ("[case.train]\nepochs = 0\n", "train.epochs", "at least 1"),
        ('[case.train]\noptimizer = "adamm"\n', "train.optimizer", "did you mean 'adam'"),
        (
            '[case.train]\nscheduler = "step"\nscheduler_options = { step = 3 }\n',
            "train.scheduler_options.step",
            "did you mean 'step_size'",
        ),
        ('[case.data]\naugment = ["hflp"]\n', "data.augment[0]", "did you mean 'hflip'"),
        ('task = "Z"\n', "task", "unknown task"),
        ('compare = ["hw3-nope"]\n', "compare", "unknown case id"),
        ("seeds = { quik = 1 }\n", "seeds.quik", "did you mean 'quick'"),
        ("seeds = { quick = 0 }\n", "seeds.quick", "at least 1"),
        ('[case.train]\nselect_by = "val_f1"\n', "train.select_by", "use one of val_acc, val_auc, val_loss"),
        ("[case.train]\nearly_stopping = { patience = 0 }\n", "train.early_stopping.patience", "at least 1"),
        (
            '[case.train]\nearly_stopping = { patience = 5, metric = "loss" }\n',
            "train.early_stopping.metric",
            "unknown metric 'loss'",
        ),
        (
            "[case.train]\nearly_stopping = { patients = 5 }\n",
            "train.early_stopping.patients",
            "use patience and metric",
        ),
        ("[case.data]\nimage_size = 64\npad_to = 32\n", "data.pad_to", "give at least 64, or 0 for none"),
        ('[case.data]\nresize = "bicubic"\n', "data.resize", "use one of bilinear, nearest"),
    ],
)
def test_value_errors(write_cases, body, field, words):
    text = one_case(body)
    if body.startswith("task"):
        text = text.replace('task = "A"\n', "", 1)
    message = error_of(write_cases, text)
    assert f"'{field}'" in message and words in message


def test_id_must_start_with_suite(write_cases):
    message = error_of(write_cases, one_case("").replace('id = "hw3-x"', 'id = "hw4-x"'))
    assert "must start with the suite name 'hw3'" in message


def test_every_pattern_must_match_and_a_typo_gets_the_closest_ids_not_all_of_them():
    """A typo among several ids used to run the others and exit 0; alone, it printed all 108 ids on one line."""
    cases, _ = load_cases()
    with pytest.raises(CaseError) as info:
        select(cases, ["hw3-a-cnn", "hw3-a-cnn-dropuot"])
    message = str(info.value)
    assert "'hw3-a-cnn-dropuot'" in message and "did you mean hw3-a-cnn-dropout" in message
    assert "xraybench list" in message and "hw4-b-resnet18" not in message and len(message) < 200
    with pytest.raises(CaseError, match="no case matches 'nothing\\*' \\(xraybench list"):
        select(cases, ["hw3-a*", "nothing*"])
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


def test_grid_expands_into_sub_cases(write_cases):
    path = write_cases(one_case('grid = { "train.lr" = [1e-3, 1e-4], "train.batch_size" = [16, 32] }\n'))
    cases = own_cases(path)
    assert [c.id for c in cases] == [
        "hw3-x.lr0.001.bs16",
        "hw3-x.lr0.001.bs32",
        "hw3-x.lr0.0001.bs16",
        "hw3-x.lr0.0001.bs32",
    ]
    assert {c.sweep for c in cases} == {"hw3-x"}
    assert cases[1].train.batch_size == 32 and cases[1].sweep_params == {"train.lr": 1e-3, "train.batch_size": 32}
    assert len({c.config_hash for c in cases}) == 4


def test_grid_key_must_name_a_field(write_cases):
    message = error_of(write_cases, one_case('grid = { "train.lrr" = [1e-3] }\n'))
    assert "'grid.train.lrr'" in message and "did you mean 'train.lr'" in message


def test_profile_overrides_and_profile_only_cases(write_cases):
    path = write_cases(one_case('profiles = ["full"]\n[case.profile_overrides]\nquick = { "train.epochs" = 1 }\n'))
    case = own_cases(path)[0]
    assert case.profiles == ("full",)
    assert apply_profile(case, PROFILES["quick"]).train.epochs == 1
    assert apply_profile(case, PROFILES["full"]).train.epochs == 3
    message = error_of(write_cases, one_case('[case.profile_overrides]\nquik = { "train.epochs" = 1 }\n'))
    assert "did you mean 'quick'" in message


def test_hw4_declares_every_backbone_both_ways():
    cases, _suites = load_cases()
    hw4 = [c for c in cases if c.suite == "hw4"]
    finetune = {c.model.name for c in hw4 if c.task == "B"}
    frozen = {c.model.name for c in hw4 if c.task == "C"}
    assert (
        finetune == frozen
        and {
            "resnet18",
            "resnet34",
            "resnet50",
            "densenet121",
            "mobilenet_v3_large",
            "googlenet",
            "efficientnet_b0",
            "squeezenet1_0",
            "convnext_small",
            "alexnet",
            "efficientnet_lite0",
        }
        == finetune
    )
    assert all(c.mode == "frozen" for c in hw4 if c.task == "C")
    sweep = [c for c in hw4 if c.sweep == "hw4-s-resnet50"]
    assert len(sweep) == 2 * 2 * 3 * 3 and all(c.profiles == ("full",) for c in sweep)
    long_run = next(c for c in hw4 if c.id == "hw4-l-alexnet-120")
    assert long_run.train.epochs == 120 and long_run.profiles == ("full",)


def test_image_size_zero_takes_the_weights_input_size(write_cases):
    cases, _ = load_cases()
    assert next(c for c in cases if c.id == "hw4-b-resnet18").data.image_size == 224  # ResNet18_Weights crop size
    message = error_of(write_cases, one_case("[case.data]\nimage_size = 0\n"))
    assert "'data.image_size'" in message and "hw3_cnn declares none" in message


def test_the_multistep_schedule_follows_the_epochs_as_medmnist_does():
    """×0.1 at half and at three quarters of the epochs: 50 and 75 of 100, 4 and 6 of a shortened 8."""
    from xraybench.train import optim

    for epochs, milestones in ((100, (50, 75)), (8, (4, 6))):
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        schedule = optim.build_scheduler("multistep", opt, epochs=epochs, options={})
        rates = []
        for _ in range(epochs):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            schedule.step()
        assert rates[milestones[0] - 1] == pytest.approx(1e-3) and rates[milestones[0]] == pytest.approx(1e-4)
        assert rates[milestones[1] - 1] == pytest.approx(1e-4) and rates[milestones[1]] == pytest.approx(1e-5)
    assert "milestones" in optim.scheduler_options("multistep")


def test_the_cosine_schedule_spans_the_declared_epochs_as_medmnist_plus_does():
    """lr · (1 + cos(π e / T)) / 2 at epoch e of T declared epochs: early stopping ends a run before the schedule
    has decayed far, as in MedMNIST+ (T = 100)."""
    import math

    from xraybench.train import optim

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    schedule = optim.build_scheduler("cosine", opt, epochs=100, options={})
    rates = []
    for _ in range(100):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    for epoch in (0, 10, 50, 99):
        assert rates[epoch] == pytest.approx(1e-4 * (1 + math.cos(math.pi * epoch / 100)) / 2, rel=1e-6)


def test_adamw_decays_the_weights_apart_from_the_gradient():
    """AdamW (MedMNIST+, weight decay 0.01) shrinks a weight by lr · wd whatever its gradient; Adam's weight decay
    joins the gradient and is normalised away: with no gradient, one step takes 0.95 against Adam's 0.9."""
    from xraybench.train import optim

    for name, expected in (("adamw", 0.95), ("adam", 0.9)):
        weight = torch.nn.Parameter(torch.ones(1))
        opt = optim.build_optimizer(name, [weight], lr=0.1, weight_decay=0.5, options={})
        (0.0 * weight).sum().backward()
        opt.step()
        assert weight.item() == pytest.approx(expected, rel=1e-5), name


def test_settings_added_later_keep_the_hash_at_their_default(write_cases):
    """A case that does not use select_by, early_stopping or pad_to keeps the hash it had before they existed, so
    its stored rows and baselines stay comparable; one that sets them gets a new hash."""
    (plain,) = own_cases(write_cases(one_case("")))
    assert "select_by" not in plain.config()["train"] and "early_stopping" not in plain.config()["train"]
    assert "pad_to" not in plain.config()["data"] and "resize" not in plain.config()["data"]
    (chosen,) = own_cases(write_cases(one_case('[case.train]\nselect_by = "val_auc"\n'), "b.toml"))
    assert chosen.config()["train"]["select_by"] == "val_auc" and chosen.config_hash != plain.config_hash


def test_a_margin_is_points_or_a_fraction_recorded_in_the_row_and_not_in_the_hash(write_cases):
    from xraybench.results.rows import case_row

    (plain,) = own_cases(write_cases(one_case("")))
    body = 'margin = { test_acc = "2pp", test_auc = 0.03, train_val_gap = " 1.1 pp" }\n'
    (declared,) = own_cases(write_cases(one_case(body), "b.toml"))
    assert declared.margin == {"test_acc": 0.02, "test_auc": 0.03, "train_val_gap": 0.011}
    assert declared.config_hash == plain.config_hash and "margin" not in str(declared.config())
    assert case_row(declared).margin == declared.margin and case_row(plain).margin is None


@pytest.mark.parametrize(
    "body, field, words",
    [
        (
            'margin = { test_acc = "two" }\n',
            "margin.test_acc",
            "a margin is \"<n>pp\" or a number in [0, 1), got 'two'",
        ),
        ("margin = { test_acc = 2 }\n", "margin.test_acc", 'got 2 (2 points: "2pp" or 0.02)'),
        ('margin = { test_acc = "150pp" }\n', "margin.test_acc", "a number in [0, 1)"),
        ('margin = { test_acc = "-2pp" }\n', "margin.test_acc", "not negative"),
        ("margin = { test_auc = -0.01 }\n", "margin.test_auc", "not negative"),
        ("margin = { test_auc = true }\n", "margin.test_auc", "got True"),
        ("margin = { test_auc = nan }\n", "margin.test_auc", "got nan"),
        ("margin = { test_f1 = 0.02 }\n", "margin.test_f1", "accepted: test_acc, test_auc, train_val_gap"),
        ("margin = 0.02\n", "margin", "must be a table"),
    ],
)
def test_a_bad_margin_is_one_line_naming_file_case_and_field(write_cases, body, field, words):
    message = error_of(write_cases, one_case(body))
    assert "'hw3-x'" in message and f"'{field}'" in message and words in message and "\n" not in message


def test_questions_as_a_string_or_a_table(write_cases):
    header = HEADER.replace('A = "task a"', 'A = "task a"\nB = "task b"\nC = "task c"')
    asked = '[questions]\nA = "Better?"\nB = { text = "Less overfit?", answer_on = ["train_val_gap", "test_acc"] }\n'
    _, suites = load_cases([write_cases(header + asked)])
    assert suites["hw3"].questions == {
        "A": {"text": "Better?", "answer_on": ["test_acc", "test_auc"]},
        "B": {"text": "Less overfit?", "answer_on": ["train_val_gap", "test_acc"]},
    }
    extending = 'suite = "mine"\nextends = "hw3"\n[tasks]\nD = "task d"\n[questions]\nA = "Mine?"\nD = "Also?"\n'
    _, suites = load_cases([write_cases(extending, "mine.toml")])
    assert suites["mine"].questions["A"]["text"] == "Mine?" and suites["mine"].questions["D"]["text"] == "Also?"
    assert suites["mine"].questions["B"] == suites["hw3"].questions["B"]  # inherited with the tasks


@pytest.mark.parametrize(
    "table, field, words",
    [
        ('Z = "Better?"', "questions.Z", "not a task of this file"),
        ("A = 3", "questions.A", "a string or a table"),
        ('A = ""', "questions.A", "the question is empty"),
        ('A = { answer_on = ["test_acc"] }', "questions.A", "missing text"),
        ('A = { text = "?", answer = ["test_acc"] }', "questions.A.answer", "did you mean 'answer_on'"),
        ('A = { text = "?", answer_on = "test_acc" }', "questions.A.answer_on", "must be a list"),
        ('A = { text = "?", answer_on = [] }', "questions.A.answer_on", "at least one metric"),
        ('A = { text = "?", answer_on = ["test_f1"] }', "questions.A.answer_on[0]", "accepted: test_acc, test_auc"),
        ('A = { text = "?", answer_on = ["test_acc", "test_acc"] }', "questions.A.answer_on[1]", "named twice"),
    ],
)
def test_a_bad_question_is_one_line_naming_file_and_field(write_cases, table, field, words):
    message = error_of(write_cases, HEADER + f"[questions]\n{table}\n")
    assert f"'{field}'" in message and words in message and "\n" not in message


def test_every_builtin_task_with_a_comparison_asks_a_question():
    cases, suites = load_cases()
    assert set(suites["hw3"].questions) == set(suites["hw3"].tasks)
    assert suites["hw3"].questions["A"]["answer_on"] == ["train_val_gap", "test_acc"]
    assert not {(c.suite, c.task) for c in cases if c.compare} - {(s, t) for s in suites for t in suites[s].questions}
    assert all(not c.margin for c in cases)  # the built-in comparisons keep the default margins
