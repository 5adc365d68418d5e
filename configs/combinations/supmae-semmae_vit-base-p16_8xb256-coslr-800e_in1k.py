# NEW COMBINATION (no paper reports it): SemMAE's part-guided masks (../semmae/semmae_vit-base-
# p16_8xb256-coslr-800e_in1k.py, unchanged: MAE ViT-B/16 800e, λ from intra- to inter-part)
# with SupMAE's supervised branch (../supmae: mean of the visible tokens, BN-MLP head, CE on
# logits / 10, weight 0.01). The branch reads the visible tokens of the part-guided mask, so it
# classifies from the parts left visible. Needs labels: the train/ class folders give them.
_base_ = ['../semmae/semmae_vit-base-p16_8xb256-coslr-800e_in1k.py']

model = dict(
    cls_head=dict(type='VisibleTokenClsHead', num_classes=1000, in_channels=768, pool='avg',
                  head='mlp', hidden_channels=3072, temperature=10.0),
    cls_loss_ratio=0.01)

train_dataloader = dict(dataset=dict(with_label=True))
