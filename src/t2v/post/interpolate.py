"""Frame interpolation: insert ``factor - 1`` frames between every pair of frames so that objects move.

Three methods, all pure functions of RGB uint8 frames:

* ``"flow"`` -- OpenCV's DIS optical flow computed in both directions between frames a and b. The
  motion is projected to the intermediate time t by forward-splatting both flows (a's pixels to
  ``x + t*F_ab(x)``, b's to ``x + (1-t)*F_ba(x)``; where several land on one pixel the one whose
  colour matches best across a and b wins, holes are filled from their neighbours), then a and b are
  backward-warped to t with ``cv2.remap`` and blended with weights ``(1-t)`` and ``t``. A
  forward-backward consistency check (``|F_ab(x) + F_ba(x + F_ab(x))|``) marks the pixels one frame
  cannot see: where the sample from b is hidden in a (uncovered background) only b is used, where the
  sample from a is hidden in b (covered background) only a is used.
* ``"minterpolate"`` -- FFmpeg's ``minterpolate`` filter (motion-compensated, overlapped block motion
  compensation, bidirectional motion estimation) run through PyAV's filter graph.
* ``"blend"`` -- a plain cross-fade; it ghosts (two half-bright copies of a moving object) and is kept
  as the baseline for tests and the benchmark.
* ``"rife"`` -- optional: RIFE with the user's own model folder, through the rife-ncnn-vulkan package
  (:mod:`t2v.post.rife`; the ``rife`` extra). t2v ships no RIFE weights.

The originals are kept bit-exact at every ``factor``-th position: ``n`` frames give
``(n - 1) * factor + 1`` frames. ``benchmarks/bench_interpolate.py`` measures the methods;
docs/post.md has the figures and why :data:`DEFAULT_METHOD` is what it is.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any, Callable

import numpy as np

from t2v.errors import InvalidRequest
from t2v.extras import install_hint

from t2v.post.steps import Clip, PostStep
from t2v.requests import PostSpec
from t2v.post.rife import check_model, check_package, rife_frames

METHODS = ("flow", "minterpolate", "blend")  # built in
OPTIONAL_METHODS = ("rife",)  # the user's weights, through an optional package (t2v.post.rife)
DEFAULT_METHOD = "flow"
MIN_FACTOR, MAX_FACTOR = 2, 8
# minterpolate: motion-compensated interpolation, overlapped block motion compensation, bidirectional
# motion estimation, variable-size block motion compensation. mb_size=8 (FFmpeg's default is 16) was
# measured better on small moving objects at about the same speed (docs/post.md).
MINTERPOLATE_OPTIONS = "mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:mb_size=8"

# Forward-backward consistency: a pixel whose round trip a -> b -> a misses by more than this (in
# pixels, plus a share of the motion) is taken as not visible in the other frame.
_OCC_ABS_PX = 1.0
_OCC_REL = 0.05


def _check_factor(factor: int) -> int:
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)):
        try:
            nearest = min(max(round(float(factor)), MIN_FACTOR), MAX_FACTOR)
        except (TypeError, ValueError):
            nearest = MIN_FACTOR
        raise InvalidRequest(f"interpolate: {factor!r} is not a whole number; valid: {MIN_FACTOR}..{MAX_FACTOR} "
                             f"(nearest: {nearest})", field="interpolate")
    factor = int(factor)
    if not MIN_FACTOR <= factor <= MAX_FACTOR:
        nearest = min(max(factor, MIN_FACTOR), MAX_FACTOR)
        raise InvalidRequest(f"interpolate: {factor} frames per frame is out of range; valid: {MIN_FACTOR}..{MAX_FACTOR} "
                             f"(nearest: {nearest})", field="interpolate")
    return factor


def _check_method(method: str) -> str:
    valid = METHODS + OPTIONAL_METHODS
    if method not in valid:
        raise InvalidRequest(f"interpolation: unknown method {method!r}; valid: {', '.join(valid)}",
                             field="interpolation")
    return method


def _fmt(x: float) -> str:
    return f"{x:g}"


def factor_for_fps(fps: float, target_fps: float) -> int:
    """The interpolation factor that turns a clip at ``fps`` into one at ``target_fps``.

    ``target_fps`` must be a whole multiple of ``fps``, 2x to 8x; otherwise :class:`InvalidRequest`
    names ``target_fps`` and the nearest valid target(s)."""
    if not fps or fps <= 0:
        raise InvalidRequest(f"fps: {fps!r} must be positive", field="fps")
    ratio = float(target_fps) / float(fps)
    factor = round(ratio)
    if abs(ratio - factor) <= 1e-6 * max(1.0, ratio) and MIN_FACTOR <= factor <= MAX_FACTOR:
        return int(factor)
    valid = [fps * k for k in range(MIN_FACTOR, MAX_FACTOR + 1)]
    if ratio < MIN_FACTOR:
        nearest, why = [valid[0]], f"is less than {MIN_FACTOR}x the clip's {_fmt(fps)} fps"
    elif ratio > MAX_FACTOR:
        nearest, why = [valid[-1]], f"is more than {MAX_FACTOR}x the clip's {_fmt(fps)} fps"
    else:
        lo, hi = int(np.floor(ratio)), int(np.ceil(ratio))
        d_lo, d_hi = ratio - lo, hi - ratio
        if abs(d_lo - d_hi) < 1e-9:
            nearest = [fps * lo, fps * hi]
        else:
            nearest = [fps * (lo if d_lo < d_hi else hi)]
        why = f"is not a whole multiple of the clip's {_fmt(fps)} fps"
    raise InvalidRequest(f"target_fps: {_fmt(target_fps)} {why}; nearest: {' or '.join(_fmt(v) for v in nearest)} "
                         f"(valid: {MIN_FACTOR}x..{MAX_FACTOR}x)", field="target_fps")


def _cv2():
    try:
        import cv2
    except ImportError:
        raise InvalidRequest(f"interpolation: 'flow' needs OpenCV, which the post extra installs ({install_hint('post')}); "
                             "nearest valid: minterpolate", field="interpolation") from None
    return cv2


def _check_frames(frames: list[np.ndarray]) -> tuple[int, int]:
    shape = None
    for i, f in enumerate(frames):
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise InvalidRequest(f"frames: frame {i} must be an HxWx3 uint8 RGB array", field="frames")
        if shape is None:
            shape = f.shape
        elif f.shape != shape:
            raise InvalidRequest(f"frames: frame {i} is {f.shape[1]}x{f.shape[0]}, frame 0 is {shape[1]}x{shape[0]}",
                                 field="frames")
    return (shape[0], shape[1]) if shape else (0, 0)


def interpolate(frames: list[np.ndarray], factor: int, *, method: str = DEFAULT_METHOD, fps: float | None = None,
                on_frame: Callable[[int, int], None] | None = None, model: str | None = None) -> list[np.ndarray]:
    """Insert ``factor - 1`` frames between each pair of ``frames`` (HxWx3 uint8 RGB).

    Returns ``(n - 1) * factor + 1`` frames with the originals (copies) at every ``factor``-th position;
    fewer than two frames come back as copies. ``fps`` is the clip's frame rate (only minterpolate's
    filter graph uses it; default 24). ``on_frame(done, total)`` is called after each output frame. ``model``:
    rife's model folder (InvalidRequest when it is missing or incomplete, or the package is not installed)."""
    factor = _check_factor(factor)
    method = _check_method(method)
    if method == "rife":
        check_model(model)
    frames = list(frames)
    _check_frames(frames)
    n = len(frames)
    if n < 2:
        out = [np.array(f, copy=True) for f in frames]
        if on_frame:
            for i in range(len(out)):
                on_frame(i + 1, len(out))
        return out
    total = (n - 1) * factor + 1
    done = [0]

    def emit(out: list[np.ndarray], frame: np.ndarray) -> None:
        out.append(frame)
        done[0] += 1
        if on_frame:
            on_frame(done[0], total)

    if method == "rife":
        return rife_frames(frames, factor, model, emit)

    if method == "minterpolate":
        inner = _minterpolate(frames, factor, 24.0 if fps is None else float(fps))
        out: list[np.ndarray] = []
        for i in range(n - 1):
            emit(out, frames[i].copy())
            for k in range(1, factor):
                emit(out, inner[i * factor + k])
        emit(out, frames[-1].copy())
        return out

    out = []
    flow = _FlowInterpolator() if method == "flow" else None
    for i in range(n - 1):
        a, b = frames[i], frames[i + 1]
        emit(out, a.copy())
        if flow is not None:
            flow.pair(a, b)
        for k in range(1, factor):
            t = k / factor
            if flow is not None:
                emit(out, flow.at(t))
            else:
                emit(out, _blend(a, b, t))
    emit(out, frames[-1].copy())
    assert len(out) == total
    return out


def _blend(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    mix = a.astype(np.float32) * (1.0 - t) + b.astype(np.float32) * t
    return np.clip(mix + 0.5, 0, 255).astype(np.uint8)


class _FlowInterpolator:
    """DIS flow both ways for one pair of frames, then any number of intermediate times."""

    def __init__(self, preset: int | None = None):
        cv2 = self.cv2 = _cv2()
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM if preset is None else preset)

    def pair(self, a: np.ndarray, b: np.ndarray) -> None:
        cv2 = self.cv2
        self.a, self.b = a, b
        h, w = a.shape[:2]
        ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        self.f_ab = self.dis.calc(ga, gb, None)
        self.f_ba = self.dis.calc(gb, ga, None)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self.gx, self.gy = gx, gy
        # Forward-backward consistency: where does a's pixel land in b, and does b's flow bring it back?
        back_at_b = cv2.remap(self.f_ba, gx + self.f_ab[..., 0], gy + self.f_ab[..., 1], cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        fwd_at_a = cv2.remap(self.f_ab, gx + self.f_ba[..., 0], gy + self.f_ba[..., 1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        self.occ_a = self._occluded(self.f_ab, back_at_b)  # a's pixel not seen in b (being covered)
        self.occ_b = self._occluded(self.f_ba, fwd_at_a)  # b's pixel not seen in a (being uncovered)
        # Photometric error of each pixel's match in the other frame: decides who wins a splat collision.
        fa, fb = ga.astype(np.float32), gb.astype(np.float32)
        b_at_a = cv2.remap(fb, gx + self.f_ab[..., 0], gy + self.f_ab[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        a_at_b = cv2.remap(fa, gx + self.f_ba[..., 0], gy + self.f_ba[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        self.err_a = np.abs(fa - b_at_a) + 255.0 * self.occ_a
        self.err_b = np.abs(fb - a_at_b) + 255.0 * self.occ_b
        self.occ_a_soft = cv2.GaussianBlur(self.occ_a.astype(np.float32), (5, 5), 0)
        self.occ_b_soft = cv2.GaussianBlur(self.occ_b.astype(np.float32), (5, 5), 0)

    @staticmethod
    def _occluded(flow: np.ndarray, back: np.ndarray) -> np.ndarray:
        miss = np.hypot(flow[..., 0] + back[..., 0], flow[..., 1] + back[..., 1])
        speed = np.hypot(flow[..., 0], flow[..., 1])
        return miss > _OCC_ABS_PX + _OCC_REL * speed

    def _flow_at(self, t: float) -> np.ndarray:
        """The motion a -> b of the pixel at each position at time t (splatted from both frames)."""
        h, w = self.gx.shape
        gx, gy = self.gx.ravel(), self.gy.ravel()
        # candidates from a: position x + t*F_ab, motion F_ab; from b: x + (1-t)*F_ba, motion -F_ba
        fa = self.f_ab.reshape(-1, 2)
        fb = self.f_ba.reshape(-1, 2)
        xa, ya = np.rint(gx + t * fa[:, 0]), np.rint(gy + t * fa[:, 1])
        xb, yb = np.rint(gx + (1 - t) * fb[:, 0]), np.rint(gy + (1 - t) * fb[:, 1])
        xs = np.concatenate([xa, xb]).astype(np.int64)
        ys = np.concatenate([ya, yb]).astype(np.int64)
        motion = np.concatenate([fa, -fb])
        err = np.concatenate([self.err_a.ravel(), self.err_b.ravel()])
        inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
        target = (ys * w + xs)[inside]
        motion, err = motion[inside], err[inside]
        # one key per candidate: quantised error in the high bits, candidate index in the low ones, so the
        # smallest key landing on a pixel names the best-matching candidate (ties: the lowest index)
        key = (np.minimum(err, 1023.0) * 16).astype(np.int64) << 32 | np.arange(len(target), dtype=np.int64)
        best = np.full(h * w, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(best, target, key)
        hit = best != np.iinfo(np.int64).max
        win = best[hit] & 0xFFFFFFFF
        out = np.zeros((h * w, 2), np.float32)
        filled = np.zeros(h * w, np.float32)
        out[hit] = motion[win]
        filled[hit] = 1.0
        out, filled = out.reshape(h, w, 2), filled.reshape(h, w)
        return self._fill_holes(out, filled)

    def _fill_holes(self, flow: np.ndarray, filled: np.ndarray) -> np.ndarray:
        """Fill unsplatted pixels with the average of their filled neighbours, growing the window."""
        cv2 = self.cv2
        if filled.all():
            return flow
        result = flow.copy()
        hole = filled == 0
        k = 3
        while hole.any() and k <= 2 * max(flow.shape[:2]) + 1:
            num = cv2.blur(flow * filled[..., None], (k, k), borderType=cv2.BORDER_CONSTANT)
            den = cv2.blur(filled, (k, k), borderType=cv2.BORDER_CONSTANT)
            ok = hole & (den > 1e-6)
            result[ok] = num[ok] / den[ok][:, None]
            filled = filled.copy()
            filled[ok] = 1.0
            flow = result
            hole = filled == 0
            k = k * 2 + 1
        return result

    def at(self, t: float) -> np.ndarray:
        cv2 = self.cv2
        v = self._flow_at(t)
        ax, ay = self.gx - t * v[..., 0], self.gy - t * v[..., 1]
        bx, by = self.gx + (1 - t) * v[..., 0], self.gy + (1 - t) * v[..., 1]
        wa = cv2.remap(self.a, ax, ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        wb = cv2.remap(self.b, bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        # a's sample hidden in b -> only a is right there; b's sample hidden in a -> only b.
        hid_a = cv2.remap(self.occ_a_soft, ax, ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        hid_b = cv2.remap(self.occ_b_soft, bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        w_a = (1.0 - t) * (1.0 - hid_b) + 1e-3
        w_b = t * (1.0 - hid_a) + 1e-3
        w_a = w_a * (1.0 - hid_a) + hid_a * (1.0 + 1e-3)  # hidden in b: a takes it all
        w_b = w_b * (1.0 - hid_b) + hid_b * (1.0 + 1e-3)
        mix = (wa * w_a[..., None] + wb * w_b[..., None]) / (w_a + w_b)[..., None]
        return np.clip(mix + 0.5, 0, 255).astype(np.uint8)


def _minterpolate(frames: list[np.ndarray], factor: int, fps: float,
                  options: str = MINTERPOLATE_OPTIONS) -> list[np.ndarray]:
    """FFmpeg minterpolate at ``fps * factor``; returns the output frames indexed by output position.

    The filter keeps a few frames of look-ahead and does not flush them at the end of the stream, so the
    last frame is pushed twice more; the frames are picked by their timestamps (one input frame is
    ``factor`` output ticks), which makes the count exactly ``(n - 1) * factor + 1``."""
    import av

    h, w = frames[0].shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    graph = av.filter.Graph()
    src = graph.add_buffer(width=w, height=h, format="rgb24", time_base=1 / (rate * factor))
    to_yuv = graph.add("format", "yuv444p")
    mi = graph.add("minterpolate", f"fps={rate * factor}:{options}")
    to_rgb = graph.add("format", "rgb24")
    sink = graph.add("buffersink")
    graph.link_nodes(src, to_yuv, mi, to_rgb, sink)
    graph.configure()

    want = (len(frames) - 1) * factor + 1
    got: dict[int, np.ndarray] = {}

    def drain() -> None:
        while True:
            try:
                frame = graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            pts = int(round(frame.pts * frame.time_base * rate * factor))
            if 0 <= pts < want and pts not in got:
                got[pts] = frame.to_ndarray(format="rgb24")

    padded = list(frames) + [frames[-1]] * 2
    for i, f in enumerate(padded):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
        vf.pts = i * factor
        vf.time_base = 1 / (rate * factor)
        graph.push(vf)
        drain()
    graph.push(None)
    drain()
    missing = [p for p in range(want) if p not in got]
    if missing:
        raise RuntimeError(f"minterpolate returned no frame for output position(s) {missing[:5]}")
    return [got[p] for p in range(want)]


class InterpolateStep(PostStep):
    """Frame interpolation (``post.interpolate`` frames per frame, or ``post.target_fps``); the fps is multiplied."""

    name = "interpolate"

    def params(self, spec: PostSpec, fps: float) -> dict[str, Any] | None:
        factor = factor_for_fps(fps, spec.target_fps) if spec.target_fps is not None else spec.interpolate
        if not factor or factor == 1:
            return None
        method = DEFAULT_METHOD if spec.interpolation == "auto" else spec.interpolation
        return {"factor": factor, "method": method,
                **({"model": spec.interpolation_model} if spec.interpolation_model else {})}

    def check(self, spec: PostSpec, params: dict[str, Any], clip: Clip) -> None:
        factor = params["factor"]
        if spec.interpolation == "rife":
            check_model(spec.interpolation_model, field="post.interpolation_model")
            try:
                check_package()
            except InvalidRequest as e:
                raise InvalidRequest(f"post.{e}", field="post.interpolation") from None
        frames_out = (clip.num_frames - 1) * factor + 1 if clip.num_frames > 1 else clip.num_frames
        if clip.max_frames is not None and frames_out > clip.max_frames:
            best = max(1, (clip.max_frames - 1) // max(1, clip.num_frames - 1))
            raise InvalidRequest(f"post.interpolate: {factor}x makes {frames_out} frames, over the limit of "
                                 f"{clip.max_frames}; at most {best}x for {clip.num_frames} frames",
                                 field="post.interpolate")

    def output(self, params, clip):
        factor = params["factor"]
        frames = (clip.num_frames - 1) * factor + 1 if clip.num_frames > 1 else clip.num_frames
        return replace(clip, num_frames=frames, fps=clip.fps * factor)

    def apply(self, frames, params, fps, on_frame):
        out = interpolate(frames, params["factor"], method=params["method"], fps=fps, on_frame=on_frame,
                          model=params.get("model"))
        return out, fps * params["factor"]


INTERPOLATE = InterpolateStep()
