"""Names of the datasets and augmentations (a loader takes a :class:`DataConfig`)."""

from __future__ import annotations

from ..registry import Registry

DATASETS = Registry("dataset", "data.dataset", {
    "digits": ("neuroprune.data.sklearn_sets:load_digits",
               "scikit-learn's 8x8 digits, 1,797 images, embedded (default)"),
    "breast_cancer": ("neuroprune.data.sklearn_sets:load_breast_cancer",
                      "scikit-learn's breast cancer, 30 features, embedded"),
    "wine": ("neuroprune.data.sklearn_sets:load_wine",
             "scikit-learn's wine, 13 features, embedded"),
    "iris": ("neuroprune.data.sklearn_sets:load_iris", "scikit-learn's iris, 4 features, embedded"),
    "blobs": ("neuroprune.data.synthetic:load_blobs",
              "generated Gaussian clusters (data.samples, data.features, data.classes)"),
    "images": ("neuroprune.data.synthetic:load_images",
               "generated colour images, CIFAR-shaped by default (data.samples, data.classes, "
               "data.image_size)"),
    "multilabel": ("neuroprune.data.synthetic:load_multilabel",
                   "generated multi-label data, scikit-learn's make_multilabel_classification "
                   "(data.samples, data.features, data.classes labels; data.task: multilabel)"),
    "digits_attributes": ("neuroprune.data.sklearn_sets:load_digits_attributes",
                          "digits images with six labels each, properties of the digit "
                          "(data.task: multilabel)"),
    "yeast": ("neuroprune.data.tabular:load_yeast",
              "Yeast, a real multi-label set: 2,417 genes, 103 features, 14 functional "
              "categories, as the river package ships it; needs neuroprune[multilabel] "
              "(data.task: multilabel)"),
    "csv": ("neuroprune.data.tabular:load_csv",
            "any CSV file (data.path) with a class column (data.label_column)"),
    "folder": ("neuroprune.data.streamed:load_folder",
               "your images: data.root with one subfolder per class (or train/ val/ [test/] "
               "folders of them); needs neuroprune[images]"),
    "mnist": ("neuroprune.data.mnist:load_mnist",
              "MNIST from data.root (full 60k/10k or the MNIST-10k protocol)"),
    "fashion_mnist": ("neuroprune.data.mnist:load_fashion_mnist", "Fashion-MNIST from data.root"),
    "kmnist": ("neuroprune.data.mnist:load_kmnist",
               "Kuzushiji-MNIST from data.root (IDX or the original .npz)"),
    "usps": ("neuroprune.data.mnist:load_usps", "USPS through torchvision from data.root"),
    "cifar10": ("neuroprune.data.cifar:load_cifar10",
                "CIFAR-10 from data.root (python-pickle batches; 45k/5k/10k)"),
    "cifar100": ("neuroprune.data.cifar:load_cifar100",
                 "CIFAR-100 from data.root (python-pickle batches; 45k/5k/10k)"),
})


def multilabel_datasets() -> list[str]:
    """The datasets whose samples carry several labels (their help says ``data.task:
    multilabel``), as the error for a single-label dataset under that task lists them."""
    return [n for n in DATASETS if "data.task: multilabel" in DATASETS.help(n)]


AUGMENTATIONS = Registry("augmentation", "data.augment", {
    "crop": ("neuroprune.data.augment:random_crop", "random crop with 4 pixels of zero padding"),
    "flip": ("neuroprune.data.augment:horizontal_flip", "horizontal flip with probability 1/2"),
})
