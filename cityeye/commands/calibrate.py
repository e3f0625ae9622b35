"""`cityeye calibrate ...`: camera intrinsics from a chessboard, ground homography, zone drawings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("calibrate", help="camera intrinsics, image<->ground mapping, zone checks",
                            description="Calibration helpers for installing a camera.")
    csub = parser.add_subparsers(dest="calibrate_command", required=True, metavar="ACTION")

    p = csub.add_parser("intrinsics", help="calibrate focal length, centre and distortion from chessboard photos",
                        description="Find the chessboard in each image, refine the corners and fit the camera "
                        "matrix and distortion; prints the RMS reprojection error and writes YAML.")
    p.add_argument("images", nargs="+", type=Path, help="chessboard photos from one camera")
    p.add_argument("--board", default="9x6", help="inner corners, columns x rows (default 9x6)")
    p.add_argument("--square-mm", type=float, default=25.0, help="square size in mm (default 25)")
    p.add_argument("--out", type=Path, required=True, help="output YAML file")
    p.add_argument("--fix-aspect", action="store_true", help="hold fx/fy at 1 (steadier with few views)")
    p.set_defaults(func=_intrinsics)

    p = csub.add_parser("homography", help="fit the image<->ground homography and print its error",
                        description="Points file: {crs: 'local:<site>' | wgs84, points: [{image: [x, y], "
                        "world: [x, y]}, ...], image_size: [w, h]}. With image_size the image points are 0-1 of "
                        "the frame (as in a camera config), else pixels. A camera config with a `calibration:` "
                        "block also works (then give --frame-size).")
    p.add_argument("--points", type=Path, required=True, help="YAML file with >= 4 point pairs")
    p.add_argument("--frame-size", help="WxH of the frame when image points are 0-1 (e.g. 1920x1080)")
    p.add_argument("--ransac-px", type=float, default=4.0, help="RANSAC inlier threshold in pixels (default 4)")
    p.set_defaults(func=_homography)

    p = csub.add_parser("draw-zones", help="draw a camera config's zones onto a snapshot",
                        description="Draw every zone of a camera config onto an image, to check placement.")
    p.add_argument("--config", type=Path, required=True, help="camera config YAML")
    p.add_argument("--image", type=Path, required=True, help="a snapshot from that camera")
    p.add_argument("--out", type=Path, required=True, help="output image (.png or .jpg)")
    p.set_defaults(func=_draw_zones)


def _intrinsics(args: argparse.Namespace) -> int:
    from calibration.intrinsics import calibrate, parse_board

    try:
        board = parse_board(args.board)
    except ValueError as exc:
        print(f"error: --board: {exc}", file=sys.stderr)
        return 2
    total = len(args.images)
    seen = [0]

    def progress(path: Path, found: bool) -> None:
        seen[0] += 1
        print(f"[{seen[0]}/{total}] {path.name}: {'board found' if found else 'no board'}", file=sys.stderr)

    try:
        result = calibrate(args.images, board, args.square_mm, fix_aspect=args.fix_aspect, progress=progress)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result.save(args.out)
    print(f"views {result.views}/{total}  RMS {result.rms_px:.3f} px  fx {result.fx:.1f}  fy {result.fy:.1f}  "
          f"cx {result.cx:.1f}  cy {result.cy:.1f}  -> {args.out}")
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def _homography(args: argparse.Namespace) -> int:
    import numpy as np
    import yaml

    from calibration.homography import fit_homography

    try:
        data: Any = yaml.safe_load(args.points.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("calibration"), dict):
            data = data["calibration"]
        crs = str(data.get("crs", "local:site"))
        image = np.array([p["image"] for p in data["points"]], dtype=np.float64)
        world = np.array([p["world"] for p in data["points"]], dtype=np.float64)
        size = data.get("image_size") or (_parse_size(args.frame_size) if args.frame_size else None)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        print(f"error: {args.points}: cannot read point pairs ({exc})", file=sys.stderr)
        return 2
    if size is not None:
        image = image * np.asarray(size, dtype=np.float64)
    try:
        fit = fit_homography(image, world, crs, ransac_px=args.ransac_px)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(fit.summary())
    back = fit.world_to_image(world)
    for i, (img, wp, proj, ok) in enumerate(zip(image, world, back, fit.inliers, strict=True)):
        err = float(np.linalg.norm(proj - img))
        print(f"  {i:2d} image ({img[0]:8.1f}, {img[1]:8.1f})  world ({wp[0]:.7g}, {wp[1]:.7g})  "
              f"error {err:6.2f} px{'' if ok else '  OUTLIER'}")
    return 0


def _draw_zones(args: argparse.Namespace) -> int:
    import cv2

    from calibration.zones import draw_zones
    from edge_agent.config import load_camera_config

    try:
        cfg = load_camera_config(args.config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    image = cv2.imread(str(args.image))
    if image is None:
        print(f"error: {args.image}: cannot read the image", file=sys.stderr)
        return 2
    out = draw_zones(image, cfg.zones)
    if not cv2.imwrite(str(args.out), out):
        print(f"error: {args.out}: cannot write", file=sys.stderr)
        return 1
    print(f"{len(cfg.zones)} zone(s) of camera {cfg.id} drawn -> {args.out}")
    return 0
