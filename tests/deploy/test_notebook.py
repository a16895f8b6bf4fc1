"""notebooks/quickstart.ipynb: a valid nbformat v4 notebook, shipped without outputs, with its Colab badge, and
run offline by nbclient on t2v-shapes with the cells tagged ``colab-only`` left out (the GPU listing, the install
and the web UI with a share link). The video its generate cell writes is decoded with PyAV."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest

import nbformat  # noqa: E402  (the dev extra installs nbformat, nbclient and ipykernel)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
COLAB_ONLY = "colab-only"


def read():
    return nbformat.read(str(NOTEBOOK), as_version=4)


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_notebook_is_valid_v4_and_has_no_outputs():
    nb = read()
    nbformat.validate(nb)  # raises ValidationError on a malformed notebook
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    for cell in code_cells(nb):
        assert cell.outputs == [], f"cell {cell.get('id')} keeps outputs: strip them before committing"
        assert cell.execution_count is None, f"cell {cell.get('id')} keeps an execution count"
    assert "widgets" not in nb.metadata, "widget state is output too"


def test_the_first_cell_says_how_to_open_it_in_colab_and_install_t2v():
    """t2v has no public repository to open the notebook from: the first cell says to upload it, and the install
    cell takes the wheel a clone builds (or a repository address the user gives)."""
    nb = read()
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert "Upload notebook" in first.source and "python -m build" in first.source
    assert "colab.research.google.com/github" not in first.source, "a Colab link needs a public repository"
    install = next(c for c in code_cells(nb) if "pip install" in c.source)
    wheel = re.search(r'T2V_SOURCE = "(t2v-([\d.]+)-py3-none-any\.whl)"', install.source)
    assert wheel and '"{T2V_SOURCE}"' in install.source
    from t2v.version import __version__
    assert wheel.group(2) == __version__, "the wheel named is the one python -m build makes now"


def test_colab_only_cells_are_tagged():
    nb = read()
    cells = code_cells(nb)
    # Shell escapes and magics run only in Colab: an offline run (and a plain Python kernel) must skip them.
    for cell in cells:
        if any(line.lstrip().startswith(("!", "%")) for line in cell.source.splitlines()):
            assert COLAB_ONLY in tags(cell), f"cell {cell.get('id')} runs a shell command: tag it {COLAB_ONLY}"
    by_text = lambda text: [c for c in cells if text in c.source]  # noqa: E731
    assert by_text("!nvidia-smi") and all(COLAB_ONLY in tags(c) for c in by_text("!nvidia-smi"))
    assert by_text("pip install") and all(COLAB_ONLY in tags(c) for c in by_text("pip install"))
    launches = by_text("share=True")
    assert launches and all(COLAB_ONLY in tags(c) for c in launches), "the web UI blocks and needs the network"
    checks = by_text("torch.cuda.is_available()")
    assert any(COLAB_ONLY not in tags(c) for c in checks), "a Python cell prints whether CUDA is available"
    assert any("generate" in tags(c) and "generate(" in c.source for c in cells)
    assert any("embed=True" in c.source for c in cells), "the video is shown inline, embedded"


@pytest.fixture
def offline_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("T2V_OFFLINE", "1")
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("T2V_MODEL", "t2v-shapes")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return tmp_path


def test_notebook_runs_offline_on_t2v_shapes(offline_env):
    import ipykernel  # noqa: F401
    import nbclient
    import av

    run_dir = offline_env / "run"
    run_dir.mkdir()
    nb = copy.deepcopy(read())
    nb.cells = [c for c in nb.cells if COLAB_ONLY not in tags(c)]
    probe = nbformat.v4.new_code_cell("import sys\nprint(sys.executable)")
    nb.cells.insert(0, probe)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, allow_errors=False,
                                     resources={"metadata": {"path": str(run_dir)}})
    client.execute()  # raises CellExecutionError naming the cell that failed

    # The kernel is this interpreter (the project's venv), not some other python3 on the machine.
    kernel_python = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()
    assert Path(kernel_python).resolve() == Path(sys.executable).resolve()

    def output_text(cell) -> str:
        parts = []
        for o in cell.outputs:
            parts.append(o.get("text", ""))
            parts.extend(str(v) for v in o.get("data", {}).values())
        return "\n".join(parts)  # a stream may end mid-line (a progress bar's \r): the next starts on its own

    pick = next(c for c in nb.cells if "MODEL = " in c.source)
    assert "model: t2v-shapes" in output_text(pick)

    gen = next(c for c in nb.cells if "generate" in tags(c))
    printed = output_text(gen)
    match = re.search(r"^video: (.+)$", printed, re.M)
    assert match, printed
    assert "denoise" in printed, "a notebook shows the run's progress bar by default"
    video = Path(match.group(1).strip())
    if not video.is_absolute():
        video = run_dir / video
    assert video.resolve() == (run_dir / "outputs" / "quickstart.mp4").resolve()
    assert video.is_file() and video.with_suffix(".json").is_file()

    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (64, 64, 3)
    assert max(int(f.max()) for f in frames) > 60, "the clip is not blank"

    shown = next(c for c in nb.cells if "show" in tags(c))
    html = "".join(str(o.get("data", {}).get("text/html", "")) for o in shown.outputs)
    assert "<video" in html and "data:video/mp4;base64," in html, "the video is embedded in the notebook"

    record = next(c for c in nb.cells if "result.record" in c.source and "generate" not in tags(c))
    assert "'seed': 42" in output_text(record)
