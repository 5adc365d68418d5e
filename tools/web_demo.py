"""Interactive web demo: masks, reconstructions, part maps and attention of a checkpoint, on CPU.

    python tools/web_demo.py [--port 7860] [--config CFG --checkpoint CKPT]

then open http://127.0.0.1:7860. By default it shows the main job's MAE
(work_dirs/demo/mae_pretrain, written by `make demo`) and offers every pretraining run found under
work_dirs/; --config/--checkpoint add one more and select it. Nothing is downloaded and nothing
is sent anywhere: Gradio's analytics are off and no share link is made.

It serves this machine only. To serve the LAN: --host 0.0.0.0 --remote with a password
(--password-file FILE or $MIM_DEMO_PASSWORD; user "demo"). Paths typed in the page open only
inside work_dirs/, configs/, data/ and --allow-dir folders; uploads are images only and are
deleted when the server stops (docs/web_demo.md, "Security").
"""
import argparse
import os
import os.path as osp
import signal
import sys
from typing import List, Optional

from mim_plugins.apis import UserInputError, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mim_plugins interactive web demo')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to serve on (default loopback: this machine only; any '
                        'other needs --remote and a password)')
    parser.add_argument('--port', type=int, default=7860, help='port to serve on')
    parser.add_argument('--remote', action='store_true',
                        help='allow a --host that other machines reach (needs a password)')
    parser.add_argument('--password-file',
                        help='file whose first line is the password (else $MIM_DEMO_PASSWORD); '
                        'visitors log in as "demo"')
    parser.add_argument('--allow-dir', action='append', default=[], metavar='DIR',
                        help='another folder whose configs/checkpoints the page may open '
                        '(default only work_dirs/, configs/ and data/); repeatable')
    parser.add_argument('--max-upload-mb', type=float, default=10,
                        help='largest image upload in MB (default 10)')
    parser.add_argument('--config', help='a pretraining config to offer first')
    parser.add_argument('--checkpoint', help='its checkpoint')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    from mim_plugins.webapp.access import DEFAULT_ROOTS, check_exposure, read_password

    if bool(args.config) != bool(args.checkpoint):
        raise UserInputError('--config and --checkpoint go together. Fix: pass both, or '
                             'neither to start with the main job\'s MAE.')
    for path in (args.config, args.checkpoint):
        if path and not osp.isfile(path):
            raise UserInputError(f"'{path}' does not exist. Fix: check the path.")
    for folder in args.allow_dir:
        if not osp.isdir(folder):
            raise UserInputError(f"--allow-dir '{folder}' is not a folder. Fix: check the path.")
    if args.max_upload_mb <= 0:
        raise UserInputError(f'--max-upload-mb {args.max_upload_mb} must be positive. Fix: '
                             'e.g. --max-upload-mb 10.')
    password = read_password(args.password_file)
    check_exposure(args.host, args.remote, password)
    # Before Gradio is imported: it reads these when it loads.
    os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')
    from mim_plugins.webapp.app import serve

    # A plain `kill` ends the server through Python, so the uploads folder is deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.config, args.checkpoint, host=args.host, port=args.port, password=password,
          roots=list(DEFAULT_ROOTS) + [osp.abspath(d) for d in args.allow_dir],
          max_bytes=int(args.max_upload_mb * 2**20))


if __name__ == '__main__':
    run_cli(main)
