"""The Gradio page of the web demo: controls on the left, the panels on the right.

All computing is ``views.compute_views``; this module only wires widgets to it. Nothing leaves
the machine: analytics are off, no share link, fonts are Gradio's bundled ones. What the page
may open and who may reach it: ``access`` and ``uploads`` (docs/web_demo.md, "Security").
"""
import logging
import os.path as osp
import traceback
from typing import Dict, List, Optional, Sequence, Tuple

import gradio as gr

from ..utils.errors import UserInputError
from .access import DEFAULT_ROOTS, USER, allowed_path
from .checkpoints import DEMO_WORK_DIR, NO_DEMO, find_checkpoints, find_part_learners
from .learned import KMEANS, NO_LEARNER, choose_learner
from .masks import STRATEGIES
from .uploads import MAX_BYTES, MAX_PIXELS, check_image, private_upload_dir
from .views import PANELS, Request, compute_views, examples

logger = logging.getLogger(__name__)

INTRO = """## mim_plugins — masked image modeling, interactively
Pick an example or upload an image, a checkpoint and a masking strategy. **Click the input**
to choose the query patch of the attention map. Everything runs on this machine's CPU."""
STRATEGY_LABELS = {
    'random': 'random (MAE)',
    'block': 'block (BEiT)',
    'part-guided': 'part-guided (SemMAE)',
    'separate': 'separate masks (SemanticMIM)',
}
CSS = '#status {min-height: 6em}'

Source = Tuple[str, str]  # (path, name shown in messages)


def status_markdown(notes: List[str]) -> str:
    return '\n'.join(f'- {note}' for note in notes)


def error_markdown(message: str) -> str:
    return f'**Error:** {message}'


class DemoApp:
    """The page's state-free callbacks around ``compute_views``.

    Args:
        checkpoints: ``{label: (config, checkpoint)}`` offered in the dropdown.
        default: label selected first (None: the dropdown starts empty and the page says how
            to get a checkpoint).
        learners: ``{label: (config, checkpoint)}`` of the SemMAE part learners offered after
            ``learned.KMEANS``.
        roots: the folders whose files a typed path (config, checkpoint, centroids, part
            learner) may name.
        blocked: folders never opened that way, even inside ``roots`` (the uploads).
        max_bytes, max_pixels: the largest image accepted.
    """

    def __init__(self, checkpoints: Dict[str, Tuple[str, str]], default: Optional[str],
                 learners: Optional[Dict[str, Tuple[str, str]]] = None,
                 roots: Sequence[str] = DEFAULT_ROOTS, blocked: Sequence[str] = (),
                 max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS):
        self.checkpoints = checkpoints
        self.default = default
        self.learners = learners or {}
        self.roots, self.blocked = tuple(roots), tuple(blocked)
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        self.examples = examples()

    def allowed(self, path: str, what: str) -> str:
        return allowed_path(path, self.roots, self.blocked, what)

    def choose(self, label: Optional[str], config: str, checkpoint: str) -> Tuple[str, str]:
        """(config, checkpoint): the typed paths when both are given (inside the allowed
        folders), else the dropdown's."""
        config, checkpoint = (config or '').strip(), (checkpoint or '').strip()
        if config or checkpoint:
            if not (config and checkpoint):
                raise UserInputError('"Other checkpoint" needs both a config file and a '
                                     'checkpoint file. Fix: fill in both, or clear both to use '
                                     'the list.')
            return self.allowed(config, 'config'), self.allowed(checkpoint, 'checkpoint')
        if label in self.checkpoints:
            return self.checkpoints[label]
        raise UserInputError(NO_DEMO.format(path=DEMO_WORK_DIR))

    def update(self, source: Optional[Source], label: Optional[str], config: str,
               checkpoint: str, centroids: str, strategy: str, ratio: float, lam: float,
               predicted_ratio: float, seed: Optional[float], layer: Optional[float],
               query: Optional[Tuple[int, int]], learner: Optional[str] = KMEANS,
               learner_config: str = '', learner_checkpoint: str = '') -> list:
        """Panels (in ``PANELS`` order), the status text and (grid rows, cols, panel side)."""
        try:
            if source is None:
                raise UserInputError('No image. Fix: pick an example or upload an image.')
            check_image(source[0], source[1], self.max_bytes, self.max_pixels)
            config_path, checkpoint_path = self.choose(label, config, checkpoint)
            centroids = (centroids or '').strip()
            centroids = self.allowed(centroids, 'centroids file') if centroids else None
            chosen = choose_learner(self.learners, learner, learner_config,
                                    learner_checkpoint, self.allowed)
            req = Request(image=source[0], image_name=source[1], config=config_path,
                          checkpoint=checkpoint_path, strategy=strategy, mask_ratio=ratio,
                          lam=lam, predicted_ratio=predicted_ratio, seed=int(seed or 0),
                          query=query, layer=int(-1 if layer is None else layer),
                          centroids=centroids, learner=chosen)
            views = compute_views(req)
            side = views.panels['input'].shape[0]
            return [views.panels[p] for p in PANELS] + [status_markdown(views.notes),
                                                        (*views.grid, side)]
        except UserInputError as exc:
            message = error_markdown(str(exc))
        except Exception as exc:  # noqa: BLE001  (the page must survive any failure)
            logger.error(traceback.format_exc())
            # its text may name the server's files: the page says only that it happened
            message = error_markdown(f'unexpected {type(exc).__name__} (the server log has '
                                     'the traceback)')
        return [None] * len(PANELS) + [message, None]

    def pick_example(self, name: Optional[str]) -> Optional[Source]:
        return (self.examples[name], name) if name in self.examples else None

    @staticmethod
    def pick_upload(path: Optional[str]) -> Optional[Source]:
        return (path, osp.basename(path)) if path else None

    @staticmethod
    def click(grid: Optional[Tuple[int, int, int]], evt: gr.SelectData
              ) -> Optional[Tuple[int, int]]:
        """The (row, col) patch under a click at pixel (x, y) of the input panel, whose
        ``grid`` is (rows, cols, side in pixels)."""
        if not grid or evt.index is None:
            return None
        (x, y), (rows, cols, side) = evt.index[:2], grid
        return (min(rows - 1, int(y) * rows // side), min(cols - 1, int(x) * cols // side))

    def build(self) -> gr.Blocks:
        first_example = next(iter(self.examples))
        with gr.Blocks(title='mim_plugins demo', analytics_enabled=False) as page:
            gr.Markdown(INTRO)
            source = gr.State(self.pick_example(first_example))
            query = gr.State(None)
            grid = gr.State(None)
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    example = gr.Radio(list(self.examples), value=first_example,
                                       label='Example image', elem_id='example')
                    upload = gr.File(label='... or upload an image', file_types=['image'],
                                     type='filepath', elem_id='upload')
                    label = gr.Dropdown(list(self.checkpoints), value=self.default,
                                        label='Checkpoint', elem_id='checkpoint')
                    with gr.Accordion('Other checkpoint', open=False):
                        config = gr.Textbox(label='Config file (the pretraining config)',
                                            elem_id='config-path')
                        checkpoint = gr.Textbox(label='Checkpoint file (.pth, decoder '
                                                'included; official ones converted by '
                                                'tools/model_converters/)',
                                                elem_id='checkpoint-path')
                        centroids = gr.Textbox(
                            value=Request.centroids or '', elem_id='centroids',
                            label='SemMAE stage-1 centroids (empty: per-image k-means)')
                    strategy = gr.Radio([(v, k) for k, v in STRATEGY_LABELS.items()],
                                        value='random', label='Masking strategy',
                                        elem_id='strategy')
                    learner = gr.Dropdown(
                        [KMEANS] + list(self.learners), value=KMEANS, elem_id='part-learner',
                        label='Parts: k-means, or a learned SemMAE part learner (its maps in '
                        '"learned parts"; part-guided masks follow them)',
                        info=None if self.learners else NO_LEARNER)
                    with gr.Accordion('Other part learner', open=False):
                        learner_config = gr.Textbox(label='Part learner config',
                                                    elem_id='learner-config')
                        learner_checkpoint = gr.Textbox(
                            label='Part learner checkpoint (.pth written by tools/train.py)',
                            elem_id='learner-checkpoint')
                    ratio = gr.Slider(0.05, 0.95, value=0.75, step=0.05, elem_id='ratio',
                                      label='Mask ratio (patches hidden from the encoder)')
                    lam = gr.Slider(0.0, 1.0, value=0.5, step=0.05, elem_id='lam',
                                    label='λ, part-guided only (1 intra-part, 0 inter-part)')
                    predicted = gr.Slider(0.05, 0.95, value=0.75, step=0.05,
                                          elem_id='predicted-ratio',
                                          label='Predicted ratio, separate masks only')
                    with gr.Row():
                        seed = gr.Number(0, precision=0, label='Seed', elem_id='seed')
                        layer = gr.Number(-1, precision=0, label='Attention layer (-1 last)',
                                          elem_id='layer')
                assert STRATEGIES == tuple(STRATEGY_LABELS)
                with gr.Column(scale=3):
                    status = gr.Markdown(elem_id='status')
                    images = []
                    for row in (PANELS[:3], PANELS[3:6], PANELS[6:]):
                        with gr.Row():
                            for name in row:
                                images.append(gr.Image(
                                    label=name, format='png', interactive=False, height=240,
                                    buttons=['download', 'fullscreen'],
                                    elem_id='panel-' + name.replace(' + ', '-').replace(' ', '-')))
            controls = [source, label, config, checkpoint, centroids, strategy, ratio, lam,
                        predicted, seed, layer, query, learner, learner_config,
                        learner_checkpoint]
            outputs = images + [status, grid]
            run = dict(fn=self.update, inputs=controls, outputs=outputs,
                       trigger_mode='always_last')
            example.change(self.pick_example, example, source).then(**run)
            upload.upload(self.pick_upload, upload, source).then(**run)
            upload.clear(self.pick_example, example, source).then(**run)
            gr.on([label.change, config.submit, checkpoint.submit, centroids.submit,
                   strategy.change, ratio.change, lam.change, predicted.change, seed.change,
                   layer.change, learner.change, learner_config.submit,
                   learner_checkpoint.submit], **run)
            images[0].select(self.click, grid, query).then(**run)
            page.load(**run)
        return page


def build_app(config: Optional[str] = None, checkpoint: Optional[str] = None,
              **limits) -> gr.Blocks:
    """The page, offering the checkpoints and part learners found under work_dirs/ and, if
    given, ``config`` + ``checkpoint`` first (the default); ``limits``: ``DemoApp``'s roots,
    blocked, max_bytes, max_pixels."""
    found = find_checkpoints()
    default = next(iter(found), None)
    if config and checkpoint:
        same = [label for label, (_, ckpt) in found.items()
                if osp.abspath(ckpt) == osp.abspath(checkpoint)]
        default = same[0] if same else f'{checkpoint} (config {osp.basename(config)})'
        if not same:
            found = {default: (config, checkpoint), **found}
    return DemoApp(found, default, find_part_learners(), **limits).build()


def serve(config: Optional[str] = None, checkpoint: Optional[str] = None,
          host: str = '127.0.0.1', port: int = 7860, password: Optional[str] = None,
          roots: Sequence[str] = DEFAULT_ROOTS, max_bytes: int = MAX_BYTES) -> None:
    """Build the page and serve it until interrupted, uploads in a folder of their own that is
    deleted when it returns; with ``password``, visitors log in as ``access.USER``."""
    with private_upload_dir() as uploads:
        print(f'Uploads go to {uploads}, deleted when the server stops.', flush=True)
        page = build_app(config, checkpoint, roots=roots, blocked=[uploads],
                         max_bytes=max_bytes)
        launch(page, host, port, password, max_bytes)


def launch(page: gr.Blocks, host: str = '127.0.0.1', port: int = 7860,
           password: Optional[str] = None, max_bytes: int = MAX_BYTES) -> None:
    """Serve ``page`` until interrupted; no share link; uploads over ``max_bytes`` refused."""
    try:
        page.queue(default_concurrency_limit=1).launch(
            server_name=host, server_port=port, share=False, show_error=True, inbrowser=False,
            css=CSS, footer_links=[], max_file_size=max_bytes,
            auth=(USER, password) if password else None)
    except OSError as exc:  # Gradio's "Cannot find empty port", or an address not on this host
        raise UserInputError(f'Cannot serve on {host}:{port} ({exc}). Fix: pass a free port '
                             '(--port 7861) or an address of this machine (--host).') from None
