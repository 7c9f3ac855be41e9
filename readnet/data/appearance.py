"""How the synthetic generator draws a pedestrian: identities (a stable outfit), poses, cameras (the
nuisance ACN must remove, ReadNet §3.3), the body-part map, RGB and thermal painting, and `render`.

Every draw comes from its own generator keyed by (seed, layout, role, key) (`seeded_rng`), so the
same parameters give byte-identical images whatever the number of worker processes.
readnet.data.synthetic plans which images a layout holds and writes them.
"""
from __future__ import annotations

import colorsys
import dataclasses
import typing
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from readnet.data.layouts import LAYOUTS, SYSU_IR_CAMERAS

if typing.TYPE_CHECKING:  # render's arguments; synthetic imports this module
    from readnet.data.synthetic import ImageSpec, SyntheticConfig

_LAYOUT_CODE = {name: i for i, name in enumerate(LAYOUTS)}
ROLE_IDENTITY, ROLE_CAMERA, ROLE_POSE, ROLE_DETECTED, ROLE_PLAN = range(5)

BG, SKIN, HAIR, UPPER, LOWER, SHOES, BAG = range(7)


def seeded_rng(seed: int, layout: str, role: int, key: int) -> np.random.Generator:
    return np.random.default_rng([seed, _LAYOUT_CODE[layout], role, key])


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(h % 1.0, s, v)


@dataclass(frozen=True)
class Identity:
    """A person's stable look: outfit, body shape and the thermal response of the outfit."""

    upper: tuple[float, float, float]
    upper_second: tuple[float, float, float]
    upper_pattern: str  # solid | stripes | checks
    lower: tuple[float, float, float]
    lower_second: tuple[float, float, float]
    lower_pattern: str
    period: int
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    shoes: tuple[float, float, float]
    bag_colour: tuple[float, float, float]
    bag: str  # none | backpack | shoulder
    skirt: bool
    long_hair: bool
    height: float
    width: float
    head: float
    thermal_upper: float
    thermal_lower: float
    thermal_pattern: float
    thermal_hair: float
    thermal_bag: float


@lru_cache(maxsize=4096)
def make_identity(seed: int, layout: str, key: int) -> Identity:
    """Draw identity `key`'s appearance; the same arguments always give the same person."""
    r = seeded_rng(seed, layout, ROLE_IDENTITY, key)

    def cloth() -> tuple[float, float, float]:
        if r.random() < 0.3:  # greys, black and white are common in real pedestrian clothing
            v = float(r.uniform(0.08, 0.95))
            return (v, v, v)
        return _hsv(r.random(), r.uniform(0.35, 1.0), r.uniform(0.25, 1.0))

    upper, upper_second, lower, lower_second = cloth(), cloth(), cloth(), cloth()
    skin_v = r.uniform(0.35, 0.95)
    skin = _hsv(r.uniform(0.03, 0.09), r.uniform(0.3, 0.55), skin_v)
    patterns = ("solid", "stripes", "checks")

    def luminance(c: tuple[float, float, float]) -> float:
        return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]

    # Thermal response: mostly the fabric (independent of colour), partly dark clothes absorbing heat.
    def thermal(c: tuple[float, float, float]) -> float:
        return float(0.25 + 0.35 * r.random() + 0.15 * (1.0 - luminance(c)))

    return Identity(
        upper=upper,
        upper_second=upper_second,
        upper_pattern=patterns[int(r.choice(3, p=[0.5, 0.3, 0.2]))],
        lower=lower,
        lower_second=lower_second,
        lower_pattern=patterns[int(r.choice(3, p=[0.75, 0.1, 0.15]))],
        period=int(r.integers(3, 8)),
        skin=skin,
        hair=_hsv(r.uniform(0.02, 0.12), r.uniform(0.2, 0.7), r.uniform(0.05, 0.45)),
        shoes=_hsv(r.random(), r.uniform(0.0, 0.5), r.uniform(0.05, 0.9)),
        bag_colour=cloth(),
        bag=("none", "backpack", "shoulder")[int(r.choice(3, p=[0.5, 0.3, 0.2]))],
        skirt=bool(r.random() < 0.15),
        long_hair=bool(r.random() < 0.35),
        height=float(r.uniform(0.84, 1.0)),
        width=float(r.uniform(0.8, 1.25)),
        head=float(r.uniform(0.85, 1.15)),
        thermal_upper=thermal(upper),
        thermal_lower=thermal(lower),
        thermal_pattern=float(r.uniform(-0.08, 0.08)),
        thermal_hair=float(r.uniform(0.45, 0.6)),
        thermal_bag=float(r.uniform(0.12, 0.3)),
    )


@dataclass(frozen=True)
class Pose:
    """Per-image jitter of one person: placement, scale, stance, arm swing, facing."""

    dx: float
    dy: float
    scale: float
    stance: float
    swing: float
    back: bool
    flip: bool


def _draw_pose(r: np.random.Generator) -> Pose:
    return Pose(
        dx=float(r.uniform(-0.06, 0.06)),
        dy=float(r.uniform(-0.03, 0.03)),
        scale=float(r.uniform(0.9, 1.05)),
        stance=float(r.uniform(0.0, 0.09)),
        swing=float(r.uniform(-0.05, 0.05)),
        back=bool(r.random() < 0.5),
        flip=bool(r.random() < 0.5),
    )


@dataclass(frozen=True)
class Camera:
    """One camera's nuisance: what ACN's camera discriminator can learn (ReadNet §3.3)."""

    modality: str
    background: tuple[float, float, float]
    floor: tuple[float, float, float]
    texture: str  # gradient | tiles | stripes | blotches
    texture_period: int
    horizon: float
    cast: tuple[float, float, float]
    brightness: float
    contrast: float
    blur: float
    downscale: int
    noise: float
    strength: float = 1.0  # how much of the texture and the low resolution show (camera_strength)


@lru_cache(maxsize=16)
def make_cameras(seed: int, layout: str, strength: float = 1.0) -> tuple[Camera, ...]:
    """The layout's cameras; background hues are spread around the colour wheel so they differ.
    `strength` < 1 moves every camera toward its modality's mean camera (`weaken_cameras`)."""
    n = LAYOUTS[layout].num_cameras
    modalities = _camera_modalities(layout)
    r = seeded_rng(seed, layout, ROLE_CAMERA, 0)
    hue0 = r.random()
    textures = ("gradient", "tiles", "stripes", "blotches")
    order = r.permutation(n)
    cams = []
    for i in range(n):
        rc = seeded_rng(seed, layout, ROLE_CAMERA, i + 1)
        hue = hue0 + order[i] / n
        ir = modalities[i] == "ir"
        bg_v = rc.uniform(0.1, 0.3) if ir else rc.uniform(0.35, 0.85)
        background = (bg_v,) * 3 if ir else _hsv(hue, rc.uniform(0.25, 0.6), bg_v)
        floor_v = bg_v * rc.uniform(0.6, 0.9)
        floor = (floor_v,) * 3 if ir else _hsv(hue + rc.uniform(-0.1, 0.1), rc.uniform(0.1, 0.4), floor_v)
        cast_dir = rc.normal(size=3)
        cast = (1.0,) * 3 if ir else tuple(float(c) for c in 1.0 + 0.22 * cast_dir / np.linalg.norm(cast_dir))
        # Market has 5 high-resolution cameras and 1 low-resolution one (ReadNet §4.1); elsewhere mix.
        low_res = (layout == "market1501" and i == n - 1) or (layout != "market1501" and rc.random() < 0.3)
        cams.append(
            Camera(
                modality=modalities[i],
                background=tuple(float(c) for c in background),
                floor=tuple(float(c) for c in floor),
                texture=textures[(order[i] + int(rc.integers(0, 2))) % len(textures)],
                texture_period=int(rc.integers(4, 12)),
                horizon=float(rc.uniform(0.6, 0.85)),
                cast=cast,
                brightness=float(rc.uniform(-0.12, 0.12)),
                contrast=float(rc.uniform(0.75, 1.25)),
                blur=float(rc.uniform(0.8, 1.5) if ir else rc.uniform(0.0, 1.0)),
                downscale=int(rc.integers(2, 4)) if low_res else 1,
                noise=float(rc.uniform(0.01, 0.04)),
            )
        )
    return weaken_cameras(tuple(cams), strength)


def weaken_cameras(cams: tuple[Camera, ...], strength: float) -> tuple[Camera, ...]:
    """The camera nuisance at `strength`: 1 leaves every camera as drawn (the same bytes as before
    the knob existed), 0 gives every camera of a modality the same look, so pixels say nothing of
    the camera beyond the modality. In between, each continuous setting (colours, cast, horizon,
    brightness, contrast, blur, noise) moves linearly toward the mean over the modality's cameras,
    and the background texture and the low resolution fade in with `strength` (`_background`,
    `_apply_camera`). The draws are the same at every strength, so only the nuisance changes."""
    if strength == 1.0:
        return cams
    names = ("background", "floor", "cast", "horizon", "brightness", "contrast", "blur", "noise")
    weakened = []
    for cam in cams:
        same = [c for c in cams if c.modality == cam.modality]
        moved = {}
        for name in names:
            value = np.asarray(getattr(cam, name), np.float64)
            mean = np.mean([np.asarray(getattr(c, name), np.float64) for c in same], axis=0)
            moved[name] = mean + strength * (value - mean)
        moved = {k: tuple(float(x) for x in v) if v.ndim else float(v) for k, v in moved.items()}
        weakened.append(dataclasses.replace(cam, strength=float(strength), **moved))
    return tuple(weakened)


def _camera_modalities(layout: str) -> tuple[str, ...]:
    if layout == "sysu_mm01":
        return tuple("ir" if c in SYSU_IR_CAMERAS else "rgb" for c in range(1, LAYOUTS[layout].num_cameras + 1))
    if layout == "regdb":
        return ("rgb", "ir")
    return ("rgb",) * LAYOUTS[layout].num_cameras


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------
def draw_parts(identity: Identity, pose: Pose, height: int, width: int) -> np.ndarray:
    """Label map [H, W] uint8 of body parts (BG, SKIN, HAIR, UPPER, LOWER, SHOES, BAG)."""
    img = Image.new("L", (width, height), BG)
    d = ImageDraw.Draw(img)
    u = height * 0.9 * identity.height * pose.scale  # person height in pixels
    s = width / 64  # horizontal sizes follow the image width
    cx = width / 2 + pose.dx * width
    top = (height - u) / 2 + pose.dy * height
    head_r = 0.062 * u * identity.head
    neck_y = top + 2 * head_r
    shoulder_y = neck_y + 0.02 * u
    hip_y = top + 0.52 * u
    foot_y = top + u
    half_w = 12.5 * s * identity.width * pose.scale * identity.height
    leg_w = 0.42 * half_w
    arm_w = max(1.0, 0.3 * half_w)
    side = -1 if pose.flip else 1

    if identity.long_hair:
        d.rectangle([cx - head_r * 1.05, top + head_r, cx + head_r * 1.05, shoulder_y + 0.06 * u], fill=HAIR)
    for leg in (-1, 1):
        hip_x = cx + leg * half_w * 0.5
        foot_x = cx + leg * (half_w * 0.45 + pose.stance * u * 0.5)
        leg_part = SKIN if identity.skirt else LOWER
        d.polygon(
            [(hip_x - leg_w, hip_y), (hip_x + leg_w, hip_y), (foot_x + leg_w * 0.75, foot_y - 0.03 * u),
             (foot_x - leg_w * 0.75, foot_y - 0.03 * u)],
            fill=leg_part,
        )
        d.ellipse([foot_x - leg_w, foot_y - 0.05 * u, foot_x + leg_w, foot_y], fill=SHOES)
    if identity.skirt:
        d.polygon([(cx - half_w, hip_y - 0.03 * u), (cx + half_w, hip_y - 0.03 * u),
                   (cx + half_w * 1.35, hip_y + 0.2 * u), (cx - half_w * 1.35, hip_y + 0.2 * u)], fill=LOWER)
    for arm in (-1, 1):
        sx, sy = cx + arm * (half_w - arm_w * 0.5), shoulder_y + arm_w
        hx = cx + arm * (half_w + arm_w * 0.6) + (pose.swing * u * arm)
        hy = hip_y + 0.04 * u
        d.line([(sx, sy), (hx, hy)], fill=UPPER, width=max(1, int(round(2 * arm_w))))
        d.ellipse([hx - arm_w, hy - arm_w, hx + arm_w, hy + arm_w], fill=SKIN)
    d.polygon([(cx - half_w, shoulder_y), (cx + half_w, shoulder_y), (cx + half_w * 0.9, hip_y),
               (cx - half_w * 0.9, hip_y)], fill=UPPER)
    if identity.bag == "backpack":
        if pose.back:
            d.rectangle([cx - half_w * 0.7, shoulder_y + 0.03 * u, cx + half_w * 0.7, hip_y - 0.03 * u], fill=BAG)
        else:
            for strap in (-1, 1):
                x = cx + strap * half_w * 0.55
                d.line([(x, shoulder_y), (x, hip_y - 0.08 * u)], fill=BAG, width=max(1, int(half_w * 0.2)))
    elif identity.bag == "shoulder":
        bx = cx + side * (half_w + arm_w * 1.2)
        d.line([(cx - side * half_w * 0.6, shoulder_y), (bx, hip_y - 0.02 * u)], fill=BAG, width=max(1, int(half_w * 0.15)))
        d.rectangle([bx - half_w * 0.45, hip_y - 0.06 * u, bx + half_w * 0.45, hip_y + 0.09 * u], fill=BAG)
    d.rectangle([cx - head_r * 0.45, neck_y - head_r * 0.3, cx + head_r * 0.45, shoulder_y + 1], fill=SKIN)
    d.ellipse([cx - head_r * 0.85, top, cx + head_r * 0.85, neck_y], fill=HAIR if pose.back else SKIN)
    if not pose.back:
        d.chord([cx - head_r * 0.9, top - head_r * 0.1, cx + head_r * 0.9, top + head_r * 1.2], 180, 360, fill=HAIR)
    return np.asarray(img)


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width]
    return yy.astype(np.float32), xx.astype(np.float32)


def _pattern(kind: str, period: int, yy: np.ndarray, xx: np.ndarray, phase: float) -> np.ndarray:
    if kind == "stripes":
        return ((yy + phase) // period) % 2 == 1
    if kind == "checks":
        return (((yy + phase) // period) + (xx // period)) % 2 == 1
    return np.zeros(yy.shape, dtype=bool)


def _background(cam: Camera, r: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The camera's scene [H, W, 3] in 0..1, with a small per-image shift of its texture."""
    yy, xx = _grid(height, width)
    bg = np.asarray(cam.background, np.float32)
    floor = np.asarray(cam.floor, np.float32)
    phase = float(r.uniform(0, cam.texture_period * 2))
    p = cam.texture_period
    if cam.texture == "gradient":
        shade = 0.7 + 0.5 * yy / height
    elif cam.texture == "tiles":
        lines = (((yy + phase) % (2 * p)) < 1.5) | (((xx + phase) % (2 * p)) < 1.5)
        shade = np.where(lines, 0.7, 1.05)
    elif cam.texture == "stripes":
        shade = np.where(((xx + phase) // p) % 2 == 1, 0.8, 1.1)
    else:
        coarse = r.uniform(0.75, 1.2, size=(height // 16 + 2, width // 16 + 2)).astype(np.float32)
        shade = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
    if cam.strength != 1.0:  # the texture fades toward a flat wall (tested for equality: same bytes at 1)
        shade = 1.0 + cam.strength * (shade - 1.0)
    img = bg[None, None, :] * shade[..., None]
    horizon = int(cam.horizon * height + r.integers(-2, 3))
    img[horizon:] = floor * (0.85 + 0.3 * yy[horizon:, :, None] / height)
    return img * float(r.uniform(0.94, 1.06))


def paint_rgb(parts: np.ndarray, idn: Identity, phase: float) -> np.ndarray:
    """Colour a part map with the identity's outfit and patterns -> [H, W, 3] in 0..1 (BG left black)."""
    yy, xx = _grid(*parts.shape)
    primary = np.asarray([(0, 0, 0), idn.skin, idn.hair, idn.upper, idn.lower, idn.shoes, idn.bag_colour], np.float32)
    second = primary.copy()
    second[UPPER], second[LOWER] = idn.upper_second, idn.lower_second
    use_second = np.where(
        parts == UPPER, _pattern(idn.upper_pattern, idn.period, yy, xx, phase),
        (parts == LOWER) & _pattern(idn.lower_pattern, idn.period + 2, yy, xx, phase),
    )
    return np.where(use_second[..., None], second[parts], primary[parts])


def paint_thermal(parts: np.ndarray, idn: Identity, phase: float) -> np.ndarray:
    """The same part map as infrared: per-identity fabric response in gray, skin hot (bright)."""
    yy, xx = _grid(*parts.shape)
    levels = np.asarray([0.0, 0.92, idn.thermal_hair, idn.thermal_upper, idn.thermal_lower, 0.35, idn.thermal_bag], np.float32)
    gray = levels[parts]
    stripes = (parts == UPPER) & _pattern(idn.upper_pattern, idn.period, yy, xx, phase)
    gray = gray + np.where(stripes, idn.thermal_pattern, 0.0)
    return np.repeat(gray[..., None], 3, axis=2)


# ITU-R BT.601 luma weights: the visible outfit's brightness.
LUMA = np.asarray([0.299, 0.587, 0.114], np.float32)


def paint_infrared(parts: np.ndarray, idn: Identity, phase: float, shared: float) -> np.ndarray:
    """An infrared frame of the person: `shared` x the visible outfit's luma (what a near-infrared
    sensor keeps of the colour image: patterns and light/dark garments) + (1 - shared) x the
    per-identity thermal response (`paint_thermal`). The shared part is the only cue a cross-modal
    model can match an unseen identity on besides the silhouette."""
    thermal = paint_thermal(parts, idn, phase)
    if shared == 0.0:  # generator version 1's frames, byte for byte
        return thermal
    visible = paint_rgb(parts, idn, phase) @ LUMA
    return shared * visible[..., None] + (1.0 - shared) * thermal


def _apply_camera(img: np.ndarray, cam: Camera, r: np.random.Generator) -> np.ndarray:
    """Colour cast, contrast, brightness, blur or low resolution, sensor noise -> uint8 [H, W, 3]."""
    h, w = img.shape[:2]
    img = (img * np.asarray(cam.cast, np.float32) - 0.5) * cam.contrast + 0.5 + cam.brightness
    img = np.clip(img, 0.0, 1.0)
    pil = Image.fromarray((img * 255 + 0.5).astype(np.uint8))
    if cam.downscale > 1:
        low = pil.resize((max(1, w // cam.downscale), max(1, h // cam.downscale)), Image.BILINEAR).resize((w, h), Image.BILINEAR)
        pil = low if cam.strength == 1.0 else Image.blend(pil, low, cam.strength)
    if cam.blur > 0.05:
        pil = pil.filter(ImageFilter.GaussianBlur(cam.blur))
    noise = r.standard_normal(size=(h, w, 1 if cam.modality == "ir" else 3), dtype=np.float32) * (cam.noise * 255)
    out = np.asarray(pil).astype(np.float32) + noise
    if cam.modality == "ir":
        out = np.repeat(out[..., :1], 3, axis=2)  # IR frames are gray copied into 3 channels, as in SYSU-MM01
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def render(spec: ImageSpec, config: SyntheticConfig) -> np.ndarray:
    """Draw one image [H, W, 3] uint8 for `spec`; deterministic in (config, spec)."""
    h, w = config.height, config.width
    cam = make_cameras(config.seed, config.layout, config.camera_strength)[spec.camid]
    r = seeded_rng(config.seed, config.layout, ROLE_POSE, spec.pose_key)
    pose = _draw_pose(r)
    if spec.detected:  # a detector's box: shifted and rescaled against the hand-drawn one
        rd = seeded_rng(config.seed, config.layout, ROLE_DETECTED, spec.pose_key)
        pose = dataclasses.replace(pose, dx=pose.dx + rd.uniform(-0.12, 0.12), dy=pose.dy + rd.uniform(-0.06, 0.06),
                                   scale=pose.scale * rd.uniform(0.85, 1.12))
    if spec.kind == "partial":  # a passer-by cut by the box edge
        pose = dataclasses.replace(pose, dx=float(r.choice([-0.45, 0.45])), dy=float(r.uniform(-0.3, 0.3)), scale=1.3)
    elif spec.kind == "junk":  # a bad detection: mostly scene, a sliver of somebody
        pose = dataclasses.replace(pose, dx=float(r.choice([-0.62, 0.62])), dy=float(r.uniform(0.2, 0.45)), scale=0.8)
    scene = _background(cam, r, h, w)
    if spec.identity >= 0:
        idn = make_identity(config.seed, config.layout, spec.identity)
        parts = draw_parts(idn, pose, h, w)
        phase = float(r.uniform(0, 4))
        if cam.modality == "ir":
            person = paint_infrared(parts, idn, phase, config.ir_shared)
        else:
            yy, xx = _grid(h, w)
            person = paint_rgb(parts, idn, phase)
            # a soft left-right shading so bodies read as volumes rather than flat cut-outs
            person = person * (1.0 - 0.25 * np.clip(np.abs(xx - w / 2 - pose.dx * w) / (w * 0.35), 0, 1))[..., None]
        scene = np.where((parts > BG)[..., None], person, scene)
    return _apply_camera(scene, cam, r)


