"""What reads case files and finished runs loads no torch: the cases, the results, the check, the report, the
history, and the commands built on them (``list``, ``report``, ``check``, ``history``). Each is imported in a fresh
interpreter, since this one has torch loaded already. Where the declarations repeat what torch, torchvision or timm
would say (a backbone's weight file and input size, an optimiser's options, the torch hub folder), they are checked
here against the library itself."""

import inspect
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xraybench.cli import dispatch

FIXTURES = Path(__file__).parent / "fixtures"
HEAVY = ("torch", "torchvision", "timm")


def heavy_modules_after(code: str) -> list[str]:
    """Runs ``code`` in a fresh interpreter; the heavy modules it then has loaded."""
    report = f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)\n"
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + report], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["cases", "results", "check", "report", "history"])
def test_importing_a_reader_loads_no_torch(module):
    assert heavy_modules_after(f"import xraybench.{module}") == []


@pytest.fixture
def run_dirs(tmp_path):
    """Two finished runs (the HW3 smoke fixture, twice)."""
    dirs = [tmp_path / "run-a", tmp_path / "run-b"]
    for d in dirs:
        d.mkdir()
        shutil.copy(FIXTURES / "results-hw3-smoke.json", d / "results.json")
    return dirs


BASELINE = Path(__file__).parents[1] / "benchmarks" / "baselines" / "smoke-cpu.json"
COMMANDS = {  # name: (arguments, RUN standing for the first run and RUN2 for the second; the exit code)
    "list": (["list", "--profile", "quick"], 0),
    "list-wide": (["list", "hw4*", "--wide", "--profile", "full", "--runnable"], 0),
    "report": (["report", "RUN"], 0),
    "check": (["check", "RUN", "--baseline", str(BASELINE)], 1),
    "history": (["history", "RUN", "RUN2", "--json"], 0),
    "history-error": (["history", "RUN"], 2),  # telling a user's error from a bug imports nothing either
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_commands_on_cases_and_finished_runs_load_no_torch(name, run_dirs):
    args, exit_code = COMMANDS[name]
    argv = [{"RUN": str(run_dirs[0]), "RUN2": str(run_dirs[1])}.get(a, a) for a in args]
    code = f"""
        import contextlib, io
        from xraybench.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main({argv!r})
        assert code == {exit_code}, code
        """
    assert heavy_modules_after(code) == []


def test_list_without_a_profile_asks_torch_only_where_a_gpu_driver_is():
    from xraybench.cli import listing

    code = """
        import contextlib, io
        from xraybench.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["list"]) == 0
        """
    assert ("torch" in heavy_modules_after(code)) == listing._gpu_driver()


def test_case_files_are_checked_without_torch(tmp_path):
    """An unknown model, or an option the model does not take, is still an error naming the field."""
    header = 'suite = "hw3"\n[tasks]\nA = "a task"\n[[case]]\nid = "hw3-x"\ntask = "A"\ntitle = "x"\n'
    files = {
        "model.toml": header + 'model = { name = "hw3_cn" }\n',
        "option.toml": header + 'model = { name = "hw3_cnn", options = { dropuot = 0.5 } }\n',
        "backbone.toml": header + 'model = { name = "resnet18", options = { mdoe = "frozen" } }\n',
        "size.toml": header + 'model = { name = "efficientnet_b4" }\n[case.data]\nimage_size = 0\nchannels = 3\n',
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    code = f"""
        from pathlib import Path
        from xraybench.cases import CaseError, load_cases
        folder = Path({str(tmp_path)!r})
        messages = []
        for name in ("model.toml", "option.toml", "backbone.toml"):
            try:
                load_cases([folder / name])
            except CaseError as exc:
                messages.append(str(exc))
        assert "unknown model 'hw3_cn'" in messages[0] and "did you mean 'hw3_cnn'" in messages[0], messages
        assert "'model.options.dropuot'" in messages[1] and "did you mean 'dropout'" in messages[1], messages
        assert "'model.options.mdoe'" in messages[2] and "did you mean 'mode'" in messages[2], messages
        cases, _ = load_cases([folder / "size.toml"])
        assert next(c for c in cases if c.id == "hw3-x").data.image_size == 380  # the weights' own crop
        """
    assert heavy_modules_after(code) == []


def test_an_unlisted_training_option_is_looked_up_in_torch(tmp_path):
    """An option ``choices`` does not list is asked of the installed torch's signature: a misspelt one is an
    error with the closest valid name, as before."""
    from xraybench.cases import CaseError, load_cases

    path = tmp_path / "cases.toml"
    path.write_text(
        'suite = "hw3"\n[tasks]\nA = "a task"\n[[case]]\nid = "hw3-x"\ntask = "A"\ntitle = "x"\n'
        'model = { name = "hw3_cnn" }\n[case.train]\noptimizer = "sgd"\noptimizer_options = { momentun = 0.9 }\n'
    )
    with pytest.raises(CaseError) as info:
        load_cases([path])
    assert "'train.optimizer_options.momentun'" in str(info.value) and "did you mean 'momentum'" in str(info.value)


# ------------------------------------------------------------- declarations against the libraries


def test_the_declared_backbone_files_and_sizes_are_torchvisions():
    import torchvision
    from timm import get_pretrained_cfg

    from xraybench.models import backbones

    for b in backbones.TORCHVISION_BACKBONES:
        weights = torchvision.models.get_weight(b.weights)
        assert backbones.TORCHVISION_URL + b.file == weights.url, b.name
        assert b.crop_size == weights.transforms().crop_size[0], b.name
    assert get_pretrained_cfg("tf_efficientnet_lite0").input_size[-1] == backbones.LITE0_INPUT_SIZE
    for b in backbones.TIMM_BACKBONES:  # MedMNIST+'s: the protocol's bare name resolves to the declared weights
        cfg = get_pretrained_cfg(b.arch.split(".")[0])
        assert f"{cfg.architecture}.{cfg.tag}" == b.arch and cfg.input_size[-1] == b.input_size(), b.name
        if cfg.url:  # timm's own release file; vgg16.tv_in1k has none: it is torchvision's file
            assert cfg.url.rsplit("/", 1)[1] == b.url.rsplit("/", 1)[1], b.name


def test_backbones_are_declared_alike_with_and_without_torchvision():
    code = """
        import json, sys
        from xraybench.models import backbones, registry
        def declared():
            return {
                name: [str(f().path) if (f := backbones.WEIGHTS_FILES.get(name)) else None,
                       registry.native_input_size(name), registry.min_input_size(name), registry.model_options(name)]
                for name in registry.list_models()
            }
        without = declared()
        import torchvision, timm
        print(json.dumps([without, declared()]))
        """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    without, with_libraries = json.loads(done.stdout)
    assert without == with_libraries and len(without) >= 18


@pytest.mark.parametrize("env", [{}, {"TORCH_HOME": "/x/th"}, {"XDG_CACHE_HOME": "/x/cache"}])
def test_the_hub_folder_is_torchs(env, monkeypatch):
    import torch.hub

    from xraybench.models import weights

    for key in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with monkeypatch.context() as m:
        m.delitem(sys.modules, "torch")  # as in a process that never loaded torch
        without = weights.hub_dir()
    assert without == Path(torch.hub.get_dir())


def test_the_training_choices_are_what_torch_implements():
    from xraybench.train import choices, optim
    from xraybench.train.objectives import OBJECTIVES

    assert set(optim.OPTIMIZERS) == set(choices.OPTIMIZERS) and set(optim.SCHEDULERS) == set(choices.SCHEDULERS)
    for name, choice in choices.OPTIMIZERS.items():
        assert set(choice.options) <= set(optim.optimizer_options(name)), name  # never accepted, then refused
    for name, choice in choices.SCHEDULERS.items():
        assert set(choice.options) <= set(optim.scheduler_options(name)), name
    assert tuple(OBJECTIVES) == choices.LOSSES


def test_each_user_error_is_where_the_cli_looks_for_it():
    import importlib

    for part, name in dispatch.USER_ERRORS:
        cls = getattr(importlib.import_module(part), name)
        assert inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__.startswith(part), (part, name)
        assert dispatch.is_user_error(cls("x"))
    assert not dispatch.is_user_error(ValueError("x")) and not dispatch.is_user_error(KeyError("x"))
