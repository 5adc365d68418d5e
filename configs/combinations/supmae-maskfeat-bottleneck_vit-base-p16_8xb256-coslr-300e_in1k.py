# NEW COMBINATION (no paper reports it): SemanticMIM's MaskFeat bottleneck (../maskfeat/
# maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py, unchanged: 8 cls tokens, 80%
# random masks, HOG predicted by the twin stack) with SupMAE's supervised branch (../supmae:
# BN-MLP head, CE on logits / 10, weight 0.01). The branch pools the visible patch tokens of the
# main stream (the ViT that runs on the visible patches and the 8 cls tokens; never a mask
# token). Needs labels: the train/ class folders give them.
_base_ = ['../maskfeat/maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py']

model = dict(
    cls_head=dict(type='VisibleTokenClsHead', num_classes=1000, in_channels=768, pool='avg',
                  head='mlp', hidden_channels=3072, temperature=10.0),
    cls_loss_ratio=0.01)

train_dataloader = dict(dataset=dict(with_label=True))
