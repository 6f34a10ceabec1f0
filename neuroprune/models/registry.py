"""The model zoo: names of the built-in factories (:data:`MODELS`)."""

from __future__ import annotations

from ..registry import Registry

#: zoo name -> "module:function(input_shape, num_classes, **options)"
MODELS = Registry("model", "model.name", {
    "mlp": ("neuroprune.models.mlp:mlp", "fully connected; widths [300, 100] is LeNet-300-100"),
    "lenet_300_100": ("neuroprune.models.mlp:lenet_300_100", "LeNet-300-100 (LeCun et al. 1998)"),
    "lenet5": ("neuroprune.models.lenet:lenet5", "LeNet-5: conv 6-16, fully connected 120-84"),
    "lenet5_caffe": ("neuroprune.models.lenet:lenet5_caffe",
                     "LeNet-5-Caffe: conv 20-50, fully connected 500 (SNIP, sparse group lasso)"),
    "cnn_32_64": ("neuroprune.models.small_cnn:cnn_32_64",
                  "conv 32-64, fully connected 1000 (Lapid & Sipper 2022)"),
    "conv2": ("neuroprune.models.conv:conv2", "Conv-2 (Frankle & Carbin 2019)"),
    "conv4": ("neuroprune.models.conv:conv4", "Conv-4 (Frankle & Carbin 2019)"),
    "conv6": ("neuroprune.models.conv:conv6", "Conv-6 (Frankle & Carbin 2019)"),
    "vgg11": ("neuroprune.models.vgg:vgg11", "VGG-11 with BatchNorm for 32x32 inputs"),
    "vgg16": ("neuroprune.models.vgg:vgg16", "VGG-16 with BatchNorm for 32x32 inputs"),
    "resnet20": ("neuroprune.models.resnet:resnet20", "ResNet-20 for 32x32 inputs (He et al.)"),
    "resnet32": ("neuroprune.models.resnet:resnet32", "ResNet-32 for 32x32 inputs (He et al.)"),
    "resnet56": ("neuroprune.models.resnet:resnet56", "ResNet-56 for 32x32 inputs (He et al.)"),
    "vit": ("neuroprune.models.transformer:vit",
            "a small ViT: patches, pre-norm attention and GELU MLP blocks (Dosovitskiy et al.)"),
    "text_transformer": ("neuroprune.models.transformer:text_transformer",
                         "token ids -> embedding, pre-norm transformer blocks, mean pooling"),
})
