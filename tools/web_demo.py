"""Interactive web demo: masks, reconstructions, part maps and attention of a checkpoint, on CPU.

    python tools/web_demo.py [--port 7860] [--host 127.0.0.1] [--config CFG --checkpoint CKPT]

then open http://127.0.0.1:7860. By default it shows the main job's MAE
(work_dirs/demo/mae_pretrain, written by `make demo`) and offers every pretraining run found under
work_dirs/; --config/--checkpoint add one more and select it. Nothing is downloaded and nothing
is sent anywhere: Gradio's analytics are off and no share link is made.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

from mim_plugins.apis import UserInputError, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mim_plugins interactive web demo')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to serve on (default loopback only; 0.0.0.0 for the LAN)')
    parser.add_argument('--port', type=int, default=7860, help='port to serve on')
    parser.add_argument('--config', help='a pretraining config to offer first')
    parser.add_argument('--checkpoint', help='its checkpoint')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if bool(args.config) != bool(args.checkpoint):
        raise UserInputError('--config and --checkpoint go together. Fix: pass both, or '
                             'neither to start with the main job\'s MAE.')
    for path in (args.config, args.checkpoint):
        if path and not osp.isfile(path):
            raise UserInputError(f"'{path}' does not exist. Fix: check the path.")
    # Before Gradio is imported: it reads these when it loads.
    os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')
    from mim_plugins.webapp.app import build_app, launch

    launch(build_app(args.config, args.checkpoint), host=args.host, port=args.port)


if __name__ == '__main__':
    run_cli(main)
