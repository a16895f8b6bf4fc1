"""Streaming output: the time to the first playable second of a long clip against the time to the whole clip, and
what streaming costs, side by side in one run.

    .venv/bin/python benchmarks/bench_stream.py [--repeats 3] [--device cpu]

Two long clips:
- **segments**: the shipped t2v-shapes model, ``--seconds 8`` at 8 fps (segments of 8 frames joined by
  cross-fades), streamed at each seam;
- **diffusion forcing**: a tiny random-weight SkyReels-V2 DF (built here), 97 frames in windows of 17 (overlap 5),
  streamed at each window (its new latent frames decoded, the VAE's cache carried);
- **chunks**: a tiny random-weight Helios (built here), 129 frames in 4 chunks of 33, streamed at each chunk.

For each, per run: when the stream first held a playable second (fps frames a player decodes from the file as it
is then), when the run ended, and the same request unstreamed; medians of ``--repeats`` runs, with the machine
named. Progress is off (a run watched by a progress bar plans with dry runs).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path


def playable(path: Path) -> int:
    import av

    try:
        with av.open(str(path)) as c:
            return sum(1 for _ in c.decode(video=0))
    except Exception:  # noqa: BLE001  not one whole fragment yet
        return 0


def timed(request, stream: Path | None) -> tuple[float, float | None]:
    """(seconds to the whole clip, seconds to the first playable second of the stream or None)."""
    from t2v import generate
    from t2v.export.stream import ClipStream

    first: list[float] = []
    real = ClipStream.frames
    t0 = time.perf_counter()

    def frames(self, given):
        n = real(self, given)
        if not first and playable(self.path) >= self.fps:
            first.append(time.perf_counter() - t0)
        return n

    ClipStream.frames = frames
    try:
        generate(request, stream=stream, progress=False)
    finally:
        ClipStream.frames = real
    return time.perf_counter() - t0, (first[0] if first else None)


def machine() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = "AVX-512 BF16" if "avx512_bf16" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {isa}"


def main() -> None:
    from t2v.families import make_tiny_model
    from t2v.requests import GenerationRequest

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        df = make_tiny_model("skyreels-v2-df", tmp / "df", seed=0)
        helios = make_tiny_model("helios", tmp / "helios", seed=0)
        cases = {
            "segments (t2v-shapes, 8 s at 8 fps)": GenerationRequest(
                model="t2v-shapes", prompt="a red circle moving right", seed=1, seconds=8, fps=8, formats=(),
                device=args.device),
            "diffusion forcing (tiny SkyReels-V2 DF, 97 frames)": GenerationRequest(
                model=str(df), prompt="a red fox", seed=5, num_frames=97, fps=8, num_inference_steps=4, formats=(),
                extras={"base_num_frames": 17, "overlap_history": 5}, device=args.device),
            "chunks (tiny Helios, 129 frames)": GenerationRequest(
                model=str(helios), prompt="a red fox", seed=5, num_frames=129, fps=24, num_inference_steps=4,
                formats=(), device=args.device),
        }
        print(f"machine: {machine()}; medians of {args.repeats} runs")
        print("| clip | first playable second | whole clip, streamed | whole clip, unstreamed | streaming cost |")
        print("| --- | --- | --- | --- | --- |")
        for name, request in cases.items():
            timed(request, tmp / "warm.mp4")  # loads the model and fills the caches
            streamed, first, plain = [], [], []
            for k in range(args.repeats):  # alternated: the baseline and t2v under the same conditions
                total, at = timed(request, tmp / f"s{k}.mp4")
                streamed.append(total)
                first.append(at)
                plain.append(timed(request, None)[0])
            s, f, p = (statistics.median(x) for x in (streamed, first, plain))
            print(f"| {name} | {f:.2f} s ({f / s:.0%} of the run) | {s:.2f} s | {p:.2f} s | {s / p:.2f}x |")


if __name__ == "__main__":
    main()
