# mmsegmentation's runtime defaults: mmsegmentation 1.2.2's configs/_base_/default_runtime.py, the
# same merged values (tests/test_seg_base_configs.py), inherited by path so that it loads with
# either mmseg distribution. Registry scope mmseg, NCCL for distributed runs (tools/train.py
# switches to gloo on a machine without CUDA), local visualizer, iteration-based logs, and the
# flip/scale test-time-augmentation model behind --tta.
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
tta_model = dict(type='SegTTAModel')
