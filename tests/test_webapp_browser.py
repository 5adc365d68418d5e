"""End to end: the web demo in a real headless browser (Debian's Chromium driven by Playwright).

The app runs as a user starts it (``python tools/web_demo.py``) on a free loopback port, with
a freshly initialised tiny MAE checkpoint. There is no skip: without Chromium this test fails
and says how to install it (``bash tools/setup_browser.sh``, which ``make test`` runs).

``MIM_WEB_SCREENSHOT=docs/web_demo.png`` also saves the README's screenshot there, taken with
the main job's trained MAE (``make demo`` must have run) instead of the untrained one.
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_env
from test_attention import MAE_CFG, save_tiny_mae

# A real browser and a served app: minutes, the slow tier (make test runs it).
pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
# Headless, and silent on the network: without these Chromium tries to reach Google's
# services at start and, on a closed network, can hang waiting for them.
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run',
                 '--no-proxy-server']
PANEL_IDS = ('input', 'masked-input', 'reconstruction', 'reconstruction-visible', 'part-map',
             'attention')
SCREENSHOT = os.environ.get('MIM_WEB_SCREENSHOT')
TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, proc: subprocess.Popen, log: str, seconds: float = 240) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f'tools/web_demo.py exited with {proc.returncode}:\n{open(log).read()}')
        try:
            if opener.open(url, timeout=5).status == 200:
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f'tools/web_demo.py did not serve {url} within {seconds} s:\n{open(log).read()}')


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    if not os.access(CHROMIUM, os.X_OK):  # before starting anything: fail fast, never skip
        pytest.fail(f'No Chromium at {CHROMIUM}: the browser test needs it. Fix: run '
                    '`bash tools/setup_browser.sh` (Debian: apt-get install chromium), or set '
                    'CHROMIUM=/path/to/chromium.')
    tmp = tmp_path_factory.mktemp('web')
    if SCREENSHOT:
        from mim_plugins.webapp.checkpoints import demo_checkpoint
        ckpt = demo_checkpoint()
        assert ckpt, 'MIM_WEB_SCREENSHOT needs the main job\'s checkpoint: run `make demo` first'
    else:
        ckpt = str(tmp / 'mae.pth')
        save_tiny_mae(ckpt)
    port = free_port()
    log = str(tmp / 'server.log')
    env = dict(run_env(), GRADIO_ANALYTICS_ENABLED='False', GRADIO_TEMP_DIR=str(tmp / 'gradio'))
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, 'tools/web_demo.py', '--port', str(port),
                                 '--config', MAE_CFG, '--checkpoint', ckpt],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    try:
        wait_until_serving(url, proc, log)
        yield url, tmp
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def sources(page) -> dict:
    """panel id -> the src of its image (None when the panel is empty)."""
    found = {}
    for name in PANEL_IDS:
        img = page.locator(f'#panel-{name} img')
        found[name] = img.first.get_attribute('src') if img.count() else None
    return found


def wait_for_status(page, text: str) -> str:
    page.wait_for_function('t => (document.querySelector("#status") || {}).innerText'
                           '?.includes(t)', arg=text, timeout=TIMEOUT_MS)
    return page.inner_text('#status')


def wait_for_new(page, before: dict, name: str) -> dict:
    deadline = time.time() + TIMEOUT_MS / 1000
    while time.time() < deadline:
        now = sources(page)
        if now[name] and now[name] != before[name]:
            return now
        time.sleep(0.2)
    pytest.fail(f'panel {name} did not change (still {before[name]})')


def fetch_panel(url: str) -> np.ndarray:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return np.array(Image.open(response).convert('RGB'))


def test_web_demo_in_a_browser(server):
    from playwright.sync_api import sync_playwright

    url, tmp = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp / 'profile'), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={'width': 1400, 'height': 1150})
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.goto(url, timeout=TIMEOUT_MS)
            page.wait_for_selector('#panel-attention img', timeout=TIMEOUT_MS)
            status = wait_for_status(page, 'MAE on 28x28 images, 7x7 patches')
            assert '37 of 49 patches hidden' in status  # the default ratio 0.75
            first = sources(page)
            assert all(first[n] for n in PANEL_IDS if n != 'part-map')
            assert first['part-map'] is None

            # another example: every panel is redrawn from the new image
            page.get_by_label('mnist_val_digit7').check()
            shown = wait_for_new(page, first, 'input')
            digit7 = fetch_panel(shown['input'])
            want = np.array(Image.open(f'{ROOT}/mim_plugins/webapp/examples/'
                                       'mnist_val_digit7.png').convert('RGB')
                            .resize((224, 224), Image.NEAREST))
            assert np.array_equal(digit7, want)
            for name in ('masked-input', 'reconstruction', 'attention'):
                assert shown[name] != first[name]

            # the ratio slider, moved with the keyboard like a user would: 0.75 -> 0.5
            slider = page.locator('#ratio input[type=range]')
            slider.focus()
            for _ in range(5):
                slider.press('ArrowLeft')
            status = wait_for_status(page, '25 of 49 patches hidden')
            moved = wait_for_new(page, shown, 'masked-input')
            patches = fetch_panel(moved['masked-input']).reshape(7, 32, 7, 32, 3)
            assert (patches == 128).all(axis=(1, 3, 4)).sum() == 25  # gray = hidden

            # part-guided masks: the part map appears
            page.get_by_label('part-guided (SemMAE)').check()
            status = wait_for_status(page, 'Part map:')
            parts = wait_for_new(page, moved, 'part-map')
            assert 'part-guided' in status

            # a click on the input moves the attention query
            box = page.locator('#panel-input img').bounding_box()
            page.locator('#panel-input img').click(
                position={'x': box['width'] * 0.9, 'y': box['height'] * 0.1})
            wait_for_status(page, '(row 0, col 6)')
            clicked = wait_for_new(page, parts, 'attention')

            page.get_by_label('separate masks (SemanticMIM)').check()
            wait_for_status(page, 'drawn independently')
            separate = wait_for_new(page, clicked, 'reconstruction-visible')
            assert separate['part-map'] is None
            if SCREENSHOT:  # part-guided masks, the query on the digit's stroke
                page.get_by_label('part-guided (SemMAE)').check()
                wait_for_status(page, 'Part map:')
                wait_for_new(page, separate, 'part-map')
                page.locator('#panel-input img').click(
                    position={'x': box['width'] * 0.45, 'y': box['height'] * 0.25})
                wait_for_status(page, '(row 1, col 3)')
                os.makedirs(os.path.dirname(os.path.abspath(SCREENSHOT)), exist_ok=True)
                page.screenshot(path=SCREENSHOT, full_page=True)

            # a corrupt upload: one clear message, no stale panels
            corrupt = tmp / 'holiday.png'
            corrupt.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 64)
            page.set_input_files('#upload input[type=file]', str(corrupt))
            status = wait_for_status(page, 'Error:')
            assert "Corrupt or unreadable image 'holiday.png'" in status
            assert 'Fix:' in status
            page.wait_for_function('!document.querySelector("#panel-input img")',
                                   timeout=TIMEOUT_MS)

            # clearing the upload goes back to the example
            page.locator('#upload button[aria-label="Clear"]').click()
            wait_for_status(page, 'MAE on 28x28 images')
            page.wait_for_selector('#panel-input img', timeout=TIMEOUT_MS)

            # an image too small for the model
            small = tmp / 'tiny.png'
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(small)
            page.set_input_files('#upload input[type=file]', str(small))
            status = wait_for_status(page, 'too small')
            assert "'tiny.png' is 8x8 pixels" in status
        finally:
            browser.close()
